"""``torch.nn.Module`` models holding nonnegative factors (they look solvers up in the registry)."""

from .cp import DictionaryCP, NonnegativeCP
from .dictionary import DictionaryNMF
from .layers import NMFLayer, NNLSLayer
from .nmf import NMF
from .separable import SeparableNMF
from .sparse import LRSCA
from .streaming import StreamingNMF

__all__ = ["NMF", "NMFLayer", "NNLSLayer", "SeparableNMF", "DictionaryNMF", "NonnegativeCP", "DictionaryCP", "StreamingNMF", "LRSCA"]
