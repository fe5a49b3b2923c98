"""``torch.nn.Module`` models holding nonnegative factors."""

from .nmf import NMF

__all__ = ["NMF"]
