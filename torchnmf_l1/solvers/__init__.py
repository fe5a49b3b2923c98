"""Built-in solvers of every family; importing this package registers them in :mod:`torchnmf_l1.registry`.

Every class implements the contract of :class:`torchnmf_l1.solvers.base.Solver`.
"""

from .base import NMFSolver, Solver, SolverOutput
from .hals import AcceleratedHALS
from .l1_cd import DenseL1CD, SparseL1CD
from .l1_baselines import L21MultiplicativeUpdates, NesterovSmoothingL1, SubgradientL1
from .mu import MultiplicativeUpdates
from .separable import SeparableSolver, Subsampled
from .fgnsr import FGNSR
from .dictionary import ProximalDictionaryNMF
from .cp import CPHALS
from .streaming import OnlineHALS, StreamingHALS
from .distributed import DistributedHALS, DistributedKLMU, DistributedL1CD, DistributedSolver
from .nnls import MultiplicativeNNLS, NNLSSolver, ProjectedGradientNNLS
from .sparse import AlternatingSparseCoding

__all__ = [
    "Solver",
    "SolverOutput",
    "NMFSolver",
    "AcceleratedHALS",
    "MultiplicativeUpdates",
    "SparseL1CD",
    "DenseL1CD",
    "NesterovSmoothingL1",
    "SubgradientL1",
    "L21MultiplicativeUpdates",
    "SeparableSolver",
    "Subsampled",
    "FGNSR",
    "ProximalDictionaryNMF",
    "CPHALS",
    "OnlineHALS",
    "StreamingHALS",
    "DistributedSolver",
    "DistributedHALS",
    "DistributedKLMU",
    "DistributedL1CD",
    "NNLSSolver",
    "ProjectedGradientNNLS",
    "MultiplicativeNNLS",
    "AlternatingSparseCoding",
]
