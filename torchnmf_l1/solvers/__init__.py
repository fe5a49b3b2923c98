"""Built-in solvers; importing this package registers them in :mod:`torchnmf_l1.registry`."""

from .base import Solver
from .hals import AcceleratedHALS
from .mu import MultiplicativeUpdates
from .separable import SeparableSolver
from .fgnsr import FGNSR

__all__ = ["Solver", "AcceleratedHALS", "MultiplicativeUpdates", "SeparableSolver", "FGNSR"]
