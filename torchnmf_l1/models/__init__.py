"""``torch.nn.Module`` models holding nonnegative factors."""

from .nmf import NMF
from .separable import SeparableNMF

__all__ = ["NMF", "SeparableNMF"]
