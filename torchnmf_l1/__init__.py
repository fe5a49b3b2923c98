"""torchnmf_l1: GPU-accelerated, differentiable nonnegative matrix factorization on PyTorch."""

from . import kernels
from .exceptions import ConvergenceWarning, NotFittedError
from .fit import FitResult, run_fit
from .models import NMF, NNLSLayer, SeparableNMF
from .kernels.h2nmf import H2NMFClusters, h2nmf_clustering
from .models import DictionaryCP, DictionaryNMF, NonnegativeCP
from .kernels import ksparse_nnls
from .registry import available_inits, available_solvers
from .streaming import StreamingNMF
from . import solvers as _solvers  # noqa: F401  (registers the built-in solvers)

__version__ = "0.1.0"

__all__ = [
    "NMF",
    "NNLSLayer",
    "SeparableNMF",
    "H2NMFClusters",
    "h2nmf_clustering",
    "DictionaryNMF",
    "DictionaryCP",
    "NonnegativeCP",
    "ksparse_nnls",
    "ConvergenceWarning",
    "FitResult",
    "NotFittedError",
    "StreamingNMF",
    "available_inits",
    "available_solvers",
    "kernels",
    "run_fit",
    "__version__",
]
