"""Built-in solvers; importing this package registers them in :mod:`torchnmf_l1.registry`."""

from .base import Solver
from .hals import AcceleratedHALS
from .mu import MultiplicativeUpdates
from .l1_cd import DenseL1CD, SparseL1CD

__all__ = ["Solver", "AcceleratedHALS", "MultiplicativeUpdates", "SparseL1CD", "DenseL1CD"]
