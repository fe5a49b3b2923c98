"""``torch.nn.Module`` models holding nonnegative factors."""

from .nmf import NMF
from .layers import NNLSLayer

__all__ = ["NMF", "NNLSLayer"]
