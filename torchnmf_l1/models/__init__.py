"""``torch.nn.Module`` models holding nonnegative factors."""

from .nmf import NMF
from .dictionary import DictionaryNMF
from .cp import DictionaryCP, NonnegativeCP

__all__ = ["NMF", "DictionaryNMF", "NonnegativeCP", "DictionaryCP"]
