"""Built-in solvers; importing this package registers them in :mod:`torchnmf_l1.registry`."""

from .base import Solver
from .hals import AcceleratedHALS
from .mu import MultiplicativeUpdates
from .dictionary import ProximalDictionaryNMF
from .cp import CPHALS

__all__ = ["Solver", "AcceleratedHALS", "MultiplicativeUpdates", "ProximalDictionaryNMF", "CPHALS"]
