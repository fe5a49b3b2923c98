"""Element-wise helpers shared by every solver: epsilon, safe division, projections, scaling."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "eps_like",
    "safe_div",
    "project_nonneg_",
    "normalize_columns",
    "normalize_rows",
]


def eps_like(t: Tensor) -> float:
    """Machine epsilon of ``t``'s floating dtype (``torch.finfo(t.dtype).eps``)."""
    return torch.finfo(t.dtype).eps


def safe_div(numerator: Tensor, denominator: Tensor, eps: float | None = None) -> Tensor:
    """``numerator / max(denominator, eps)`` with ``eps`` taken from the dtype by default.

    Parameters
    ----------
    numerator, denominator : Tensor
        Broadcastable tensors of the same floating dtype; ``denominator >= 0``.
    eps : float, optional
        Lower bound of the denominator; ``torch.finfo(dtype).eps`` when omitted.
    """
    if eps is None:
        eps = eps_like(denominator)
    return numerator / denominator.clamp_min(eps)


def project_nonneg_(t: Tensor, floor: float = 0.0) -> Tensor:
    """Project ``t`` onto ``{t >= floor}`` in place and return it."""
    return t.clamp_(min=floor)


def normalize_columns(W: Tensor, p: float = 2.0, eps: float | None = None) -> tuple[Tensor, Tensor]:
    """Scale the columns of ``W`` (m x r, or a batch (..., m, r)) to unit ``p``-norm.

    Returns
    -------
    W_normalized : Tensor, shape like W
    norms : Tensor, shape (r,) or (..., r)
        The norms that were divided out (zero columns keep norm 0 and stay zero),
        so that ``W_normalized * norms == W``.
    """
    norms = torch.linalg.vector_norm(W, ord=p, dim=-2)
    return safe_div(W, norms.unsqueeze(-2), eps), norms


def normalize_rows(H: Tensor, p: float = 2.0, eps: float | None = None) -> tuple[Tensor, Tensor]:
    """Scale the rows of ``H`` (r x n) to unit ``p``-norm; see :func:`normalize_columns`."""
    Ht, norms = normalize_columns(H.transpose(0, 1), p, eps)
    return Ht.transpose(0, 1), norms
