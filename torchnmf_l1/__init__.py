"""torchnmf_l1: GPU-accelerated, differentiable nonnegative matrix factorization on PyTorch."""

from . import kernels
from .exceptions import ConvergenceWarning, NotFittedError
from .fit import FitResult, run_fit
from .models import NMF
from .models import DictionaryNMF
from .models import DictionaryCP, NonnegativeCP
from .kernels import ksparse_nnls
from .registry import available_inits, available_solvers
from . import solvers as _solvers  # noqa: F401  (registers the built-in solvers)

__version__ = "0.1.0"

__all__ = [
    "NMF",
    "DictionaryNMF",
    "DictionaryCP",
    "NonnegativeCP",
    "ksparse_nnls",
    "ConvergenceWarning",
    "FitResult",
    "NotFittedError",
    "available_inits",
    "available_solvers",
    "kernels",
    "run_fit",
    "__version__",
]
