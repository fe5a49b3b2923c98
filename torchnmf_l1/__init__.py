"""torchnmf_l1: GPU-accelerated, differentiable nonnegative matrix factorization on PyTorch."""

from . import kernels
from .exceptions import DistributedFitError, NotFittedError
from .fit import FitOptions, FitResult, fit_solver, run_fit
from .kernels import H2NMFClusters, SparseIdentifiability, h2nmf_clustering, ksparse_nnls, sparse_identifiability
from .models import LRSCA, NMF, DictionaryCP, DictionaryNMF, NMFLayer, NNLSLayer, NonnegativeCP, SeparableNMF, StreamingNMF
from .registry import available_inits, available_solvers
from . import init as _inits  # noqa: F401  (registers the initialisations)
from . import solvers as _solvers  # noqa: F401  (registers the built-in solvers)

__version__ = "0.1.0"


def __getattr__(name):
    if name == "ConvergenceWarning":  # made on first use: see torchnmf_l1.exceptions
        from .exceptions import convergence_warning

        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "NMF",
    "NMFLayer",
    "NNLSLayer",
    "SeparableNMF",
    "H2NMFClusters",
    "h2nmf_clustering",
    "DictionaryNMF",
    "DictionaryCP",
    "NonnegativeCP",
    "ksparse_nnls",
    "LRSCA",
    "sparse_identifiability",
    "SparseIdentifiability",
    "ConvergenceWarning",
    "DistributedFitError",
    "FitOptions",
    "FitResult",
    "NotFittedError",
    "StreamingNMF",
    "available_inits",
    "available_solvers",
    "fit_solver",
    "kernels",
    "run_fit",
    "__version__",
]
