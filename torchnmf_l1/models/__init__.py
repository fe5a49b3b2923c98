"""``torch.nn.Module`` models holding nonnegative factors."""

from .layers import NNLSLayer
from .nmf import NMF
from .separable import SeparableNMF

__all__ = ["NMF", "NNLSLayer", "SeparableNMF"]
