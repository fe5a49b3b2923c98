"""``torch.nn.Module`` models holding nonnegative factors."""

from .cp import DictionaryCP, NonnegativeCP
from .dictionary import DictionaryNMF
from .layers import NNLSLayer
from .nmf import NMF
from .separable import SeparableNMF

__all__ = ["NMF", "NNLSLayer", "SeparableNMF", "DictionaryNMF", "NonnegativeCP", "DictionaryCP"]
