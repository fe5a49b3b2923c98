"""``torch.nn.Module`` models holding nonnegative factors."""

from .nmf import NMF
from .dictionary import DictionaryNMF

__all__ = ["NMF", "DictionaryNMF"]
