"""Built-in solvers; importing this package registers them in :mod:`torchnmf_l1.registry`."""

from .base import Solver
from .hals import AcceleratedHALS
from .l1_cd import DenseL1CD, SparseL1CD
from .mu import MultiplicativeUpdates
from .separable import SeparableSolver
from .fgnsr import FGNSR
from .dictionary import ProximalDictionaryNMF
from .cp import CPHALS
from .streaming import OnlineHALS, StreamingHALS

__all__ = [
    "Solver",
    "AcceleratedHALS",
    "MultiplicativeUpdates",
    "SparseL1CD",
    "DenseL1CD",
    "OnlineHALS",
    "StreamingHALS",
    "SeparableSolver",
    "FGNSR",
    "ProximalDictionaryNMF",
    "CPHALS",
]
