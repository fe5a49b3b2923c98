r"""The coordinate-descent sweeps of (weighted) L1-NMF: each scalar step an exact weighted median.

.. math::
    f(W, H) = \sum_{(i,j)\in\Omega} |X_{ij} - (WH)_{ij}|
              + \lambda \sum_{(i,j)\notin\Omega} (WH)_{ij}
              + \lambda^{(1)} \|G\|_1

with :math:`\Omega` the nonzeros of X. For the factor G being updated (H, or W^T on the
transposed problem) and the fixed one F, the scalar subproblem in :math:`G_{pq}` is
:math:`\min_{g\ge 0} \sum_{i \in \Omega_q} F_{ip} |b_i - g| + e_q g`, with breakpoints
:math:`b_i = (R_{iq} + F_{ip} G_{pq}) / F_{ip}` (R = X - FG on the support) and
:math:`e_q = \lambda(\sum_i F_{ip} - \sum_{i\in\Omega_q} F_{ip}) + \lambda^{(1)}` (the zeros
of column q collapse into one breakpoint at 0). Its exact solution is the lower weighted
median, clamped at 0 (:func:`~torchnmf_l1.kernels.weighted_median`). Given F the columns
of G are independent, so row p of G is updated for all columns in one batched call, p = 1..r
in turn, and the residual is updated after each row. No function here reads the device.

Safeguards (Seraghiti, Gillis et al.'s code; the L1 solvers' default, ``safeguard="paper"``):
given ``weight_floor`` and ``value_floor``, the weights at or below ``weight_floor`` are
dropped from the median, a coordinate left with no weight gets 0, and a median is raised
to at least ``value_floor``. An entry is then never exactly zero while it has weight, so
the entries of the other factor that it weighs keep being updated (without the floor, an
H row zeroed by one sweep freezes the matching column of W for good). Without them
(None) each step is the exact minimiser, and a coordinate with no weight keeps its value.

A batch of B problems is one problem of B times as many segments: the support of the
block-diagonal X (sparse sweep), or the (B, L, S) dense residual; only the collapsed-zero
weight needs each problem's own column sums of F.

References
----------
Q. Ke and T. Kanade, "Robust L1 norm factorization in the presence of outliers and
missing data by alternative convex programming", CVPR 2005.
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .weighted_median import weighted_median

__all__ = ["sparse_l1_sweep_", "dense_l1_sweep_", "smoothed_l1_steps_", "l1_subgradient_step_"]


def _per_segment(values: Tensor, batch: int | None, segments: int) -> Tensor:
    """A per-problem vector (B,) repeated over each problem's ``segments / B`` segments; a scalar as is."""
    if batch is None:
        return values
    return values.unsqueeze(1).expand(batch, segments // batch).reshape(segments)


def sparse_l1_sweep_(
    G: Tensor,
    F: Tensor,
    R: Tensor,
    segments: Tensor,
    other: Tensor,
    offsets: Tensor,
    *,
    zero_weight: float = 1.0,
    l1: float = 0.0,
    layout=None,
    median=None,
    batch: int | None = None,
    active: Tensor | None = None,
    weight_floor: Tensor | None = None,
    value_floor: Tensor | None = None,
    entry_weights: Tensor | None = None,
) -> Tensor:
    r"""One exact coordinate-descent sweep over the rows of G (r x S), in place, on the support of X.

    Minimises :math:`\sum_k |R_k|` over the support (entries k in segment ``segments[k]``
    and row ``other[k]`` of F) plus ``zero_weight`` times the off-support part of
    :math:`F G`, plus ``l1 * sum(G)``, row by row of G.

    Parameters
    ----------
    G : Tensor, shape (r, S)
        The factor being updated (H, or W^T for the transposed problem); for a batch, the
        factors of the B problems side by side (S = B n).
    F : Tensor, shape (L, r)
        The fixed factor (W, or H^T); for a batch, stacked (L = B m).
    R : Tensor, shape (N,)
        Residual X - F G on the support, in segment order (CSR of the segments).
    segments, other : int64 Tensor, shape (N,)
        Segment (column of G) and row of F of each support entry.
    offsets : int64 Tensor, shape (S + 1,)
        CSR offsets of the segments.
    layout : SegmentLayout, optional
        ``segment_layout(offsets, extra=True)``, built once.
    median : callable, optional
        ``median(b, w, offsets, extra_weight=, default=, layout=)``, the scalar solver;
        default :func:`torchnmf_l1.kernels.weighted_median`. The data-parallel L1 solver
        passes :func:`torchnmf_l1.kernels.weighted_median_select` over its ranks.
    batch : int, optional
        B, for a block-diagonal batch: segments and rows of F come in B equal blocks.
    active : Tensor of bool, shape (B,), optional
        Problems to update (a converged problem keeps its G).
    weight_floor, value_floor : Tensor, 0-dim or (B,), optional
        The safeguards of the module docstring (both or neither), per problem for a batch.
    entry_weights : Tensor, shape (N,), optional
        Weights c_k of the support entries, in segment order: the loss on the support becomes
        :math:`\sum_k c_k |R_k|` (a breakpoint weighs :math:`c_k F_{ip}`). With weights the
        support is the set of observed entries and the entries off it are missing: pass
        ``zero_weight=0``.

    Returns
    -------
    Tensor, shape (N,)
        The updated residual.
    """
    r, S = G.shape
    median = weighted_median if median is None else median
    column_sums = F.sum(0) if batch is None else F.reshape(batch, -1, r).sum(1)  # (r,) or (B, r)
    tiny = torch.finfo(F.dtype).tiny
    keep = None if active is None else _per_segment(active, batch, S)
    guarded = weight_floor is not None
    if guarded:
        weight_floor_s = _per_segment(weight_floor, batch, S)
        value_floor_s = _per_segment(value_floor, batch, S)
        weight_floor_k = weight_floor_s if weight_floor_s.dim() == 0 else weight_floor_s.index_select(0, segments)
    for p in range(r):
        w = F[:, p].index_select(0, other)
        g = G[p]
        a = R + w * g.index_select(0, segments)
        # where w = 0 the breakpoint is a finite or infinite value of weight zero: never chosen
        b = a / w.clamp_min(tiny)
        on_support = torch.segment_reduce(w, "sum", offsets=offsets) if w.numel() else w.new_zeros(S)
        f = w  # F's entry: the breakpoint's position is a / f, its weight f (times c_k)
        if entry_weights is not None:
            w = w * entry_weights
        total = column_sums[p] if batch is None else _per_segment(column_sums[:, p], batch, S)
        extra = (zero_weight * (total - on_support)).clamp_min(0)
        if l1:
            extra = extra + l1
        if guarded:
            w_kept = torch.where(w > weight_floor_k, w, 0.0)
            extra = torch.where(extra > weight_floor_s, extra, 0.0)
            kept = torch.segment_reduce(w_kept, "sum", offsets=offsets) if w.numel() else w.new_zeros(S)
            new = median(b, w_kept, offsets, extra_weight=extra, default=torch.zeros_like(g), layout=layout)
            new = torch.where(kept + extra > 0, torch.maximum(new, value_floor_s), 0.0)
        else:
            new = median(b, w, offsets, extra_weight=extra, default=g, layout=layout)
        if keep is not None:
            new = torch.where(keep, new, g)
        R = a - f * new.index_select(0, segments)
        G[p] = new
    return R


def dense_l1_sweep_(
    G: Tensor, F: Tensor, R: Tensor, zeros: Tensor | None, *, zero_weight: float = 1.0, l1: float = 0.0,
    active: Tensor | None = None, weight_floor: Tensor | None = None, value_floor: Tensor | None = None,
) -> None:
    r"""One exact coordinate-descent sweep over the rows of G for dense data, in place.

    The terms are those of :func:`sparse_l1_sweep_`: one breakpoint per nonzero of X, and
    the zeros of X collapsed into one breakpoint at 0 of weight ``zero_weight`` times their
    part of F's column (in exact arithmetic a zero's own breakpoint
    :math:`-\sum_{l 
e p} F_{il} G_{lj} / F_{ip}` is <= 0, hence equivalent; computed, round-off
    can push it above 0 and make a dense sweep drift from the sparse one). So this sweep
    and the sparse one take the same steps on the same data, dense temporaries aside.

    Parameters
    ----------
    G : Tensor, shape (r, S) or (B, r, S)
    F : Tensor, shape (L, r) or (B, L, r)
    R : Tensor, shape (L, S) or (B, L, S)
        The dense residual X - F G, updated in place.
    zeros : Tensor of bool like R, optional
        True where X is zero (None: X has no zeros).
    zero_weight : float
        :math:`\lambda`, the weight of the zeros (1 for plain L1-NMF).
    active : Tensor of bool, shape (B,), optional
        Problems to update.
    weight_floor, value_floor : Tensor, 0-dim or (B,), optional
        The safeguards of the module docstring (both or neither).
    """
    tiny = torch.finfo(F.dtype).tiny
    batched = G.dim() == 3
    r, S = G.shape[-2], G.shape[-1]
    count = G.shape[0] * S if batched else S
    keep = None if active is None else active.unsqueeze(1).expand(-1, S).reshape(count)
    guarded = weight_floor is not None
    if guarded:  # per column of the (L, count) layout
        weight_floor_c = weight_floor.unsqueeze(1).expand(-1, S).reshape(count) if weight_floor.dim() else weight_floor
        value_floor_c = value_floor.unsqueeze(1).expand(-1, S).reshape(count) if value_floor.dim() else value_floor
    nonzero = None if zeros is None else ~zeros
    for p in range(r):
        f = F[..., p : p + 1]  # (L, 1) or (B, L, 1)
        g = G[..., p, :]  # (S,) or (B, S)
        a = R + f * g.unsqueeze(-2)
        b = torch.where(f > 0, a / f.clamp_min(tiny), 0.0)
        if nonzero is None:
            w = f.expand_as(a)
            extra = None
        else:
            w = torch.where(nonzero, f, 0.0)
            # as the sparse sweep computes it: the column's total minus its part on the support
            extra = (zero_weight * (f.sum(-2) - w.sum(-2))).clamp_min(0)  # (S,) or (B, S)
        if l1:
            extra = extra + l1 if extra is not None else a.new_full(g.shape, l1)
        if batched:  # one dense layout of B S problems of L terms each
            b, w = (t.transpose(0, 1).reshape(t.shape[1], count) for t in (b, w))
        if extra is not None:
            extra = extra.reshape(count)
        if guarded:
            w = torch.where(w > weight_floor_c, w, 0.0)
            if extra is not None:
                extra = torch.where(extra > weight_floor_c, extra, 0.0)
            weight = w.sum(0) if extra is None else w.sum(0) + extra
            new = weighted_median(b, w, extra_weight=extra, default=torch.zeros_like(g).reshape(count))
            new = torch.where(weight > 0, torch.maximum(new, value_floor_c), 0.0)
        else:
            new = weighted_median(b, w, extra_weight=extra, default=g.reshape(count))
        if keep is not None:
            new = torch.where(keep, new, g.reshape(count))
        new = new.view_as(g)
        R.copy_(a - f * new.unsqueeze(-2))
        G[..., p, :] = new


def smoothed_l1_steps_(G: Tensor, F: Tensor, X: Tensor, sigma: Tensor, steps: int, *, l1: float = 0.0) -> Tensor:
    r"""``steps`` projected gradient steps on the Nesterov-smoothed L1 loss in G, in place.

    .. math::
        \min_{G \ge 0} \sum_{ij} h_{\sigma q_i}ig((FG - X)_{ij}ig) + \lambda^{(1)} \sum G,
        \qquad q_i = \|F_{i:}\|_2,

    with :math:`h_\mu` the Huber function of width :math:`\mu` (the smoothing of
    :math:`|\cdot|` by its dual, :math:`\max_{|u| \le 1} u t - \mu u^2 / 2`): the gradient is
    :math:`F^T U` with :math:`U = \mathrm{clip}((FG - X) / (\sigma q), -1, 1)`, and the step
    :math:`1/L` with :math:`L = \sum_i q_i / \sigma`. Each step averages the last two iterates
    first, :math:`Y = rac{2}{k+3} G_k + rac{k+1}{k+3} G_{k-1}`, as the NS method of
    Seraghiti, Gillis et al.'s code does. X dense (m, n) or (B, m, n); F (m, r) or
    (B, m, r); G (r, n) or (B, r, n); ``sigma`` a 0-dim or (B,) tensor.

    Returns the residual FG - X of the last iterate.
    """
    q = torch.linalg.vector_norm(F, dim=-1, keepdim=True)  # (m, 1) or (B, m, 1)
    sigma = sigma.view(-1, 1, 1) if sigma.dim() else sigma
    lipschitz = (q.sum(dim=(-2, -1), keepdim=True) / sigma).clamp_min(torch.finfo(F.dtype).tiny)
    if lipschitz.dim() > G.dim():
        lipschitz = lipschitz.squeeze(0)
    width = sigma * q
    previous = G.clone()
    for k in range(1, steps + 1):
        Y = (2.0 / (k + 3)) * G + ((k + 1.0) / (k + 3)) * previous
        residual = F @ Y - X
        U = torch.where(width > 0, (residual / width.clamp_min(torch.finfo(F.dtype).tiny)).clamp(-1.0, 1.0), 0.0)
        gradient = F.mT @ U
        if l1:
            gradient = gradient + l1
        previous.copy_(G)
        torch.clamp_min(Y - gradient / lipschitz, 0.0, out=G)
    return F @ G - X


def l1_subgradient_step_(W: Tensor, H: Tensor, X: Tensor, step: float, *, l1_W: float = 0.0, l1_H: float = 0.0) -> None:
    r"""One projected subgradient step on :math:`\|X - WH\|_1` in W and H at once, in place.

    With :math:`G = \mathrm{sign}(X - WH)` (0 where the residual is 0), the subgradients are
    :math:`-G H^T` and :math:`-W^T G` (both at the current point), and
    :math:`W \leftarrow \max(0, W - t(-GH^T + \lambda_W))`,
    :math:`H \leftarrow \max(0, H - t(-W^TG + \lambda_H))` (the SUB method of Seraghiti,
    Gillis et al.'s code, whose step t decays as :math:`eta/(k+1)`).
    """
    G = torch.sign(X - W @ H)
    grad_W = -(G @ H.mT)
    grad_H = -(W.mT @ G)
    if l1_W:
        grad_W = grad_W + l1_W
    if l1_H:
        grad_H = grad_H + l1_H
    torch.clamp_min(W - step * grad_W, 0.0, out=W)
    torch.clamp_min(H - step * grad_H, 0.0, out=H)
