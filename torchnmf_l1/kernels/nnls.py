r"""Nonnegative least squares by HALS (block coordinate descent over rows), single or batched.

Solves, for fixed W (m x r),

.. math:: \min_{H \ge 0} \tfrac12 \|X - WH\|_F^2 + \lambda_1 \|H\|_1 + \tfrac{\lambda_2}{2}\|H\|_F^2

from the sufficient statistics ``A = W^T X`` (r x n) and ``B = W^T W`` (r x r):
each row is updated in closed form,

.. math:: H_{k,:} \leftarrow \max\Big(0, \frac{A_{k,:} - B_{k,:} H + B_{kk} H_{k,:} - \lambda_1}{B_{kk} + \lambda_2}\Big).

Every HALS-type update of the package runs through :func:`hals_nnls_`: HALS for NMF, the
H-fit of separable NMF (:func:`nnls_columns`), the proximal steps of dictionary NMF and
the CP factors (a proximal term :math:`\delta\|H - H_0\|^2` is A += delta H_0,
B += delta I). A leading batch dimension (H of shape (B, r, n), A (B, r, n), B (B, r, r))
solves B problems in the same kernels.

No function here reads the device: the early stop of the repeated sweeps is a
device-side mask (a problem that has stopped keeps its value while the others sweep on),
so that an iteration is one stream of kernels (capturable as one graph on a GPU).

References
----------
A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative
matrix and tensor factorizations", IEICE Trans. Fundamentals, 2009.
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hals_sweep_", "hals_sweep", "hals_nnls_", "nnls_columns", "least_squares_start"]


def _scaled(A: Tensor, B: Tensor, l1: float, l2: float, overwrite_A: bool = False) -> tuple[Tensor, Tensor]:
    """A' = (A - l1) / (B_kk + l2) row-wise and B' = B / (B_kk + l2) with a zero diagonal.

    The row update is then ``H_k <- max(0, A'_k - B'_k H)``: one GEMV (or batched GEMM)
    and one clamp per row, with no scalar read from the device. ``overwrite_A``: A' in A's storage.
    """
    diagonal = torch.diagonal(B, dim1=-2, dim2=-1)
    denominator = (diagonal + l2) if l2 else diagonal
    inverse = denominator.clamp_min(torch.finfo(B.dtype).tiny).reciprocal().unsqueeze(-1)
    if overwrite_A:
        A_scaled = (A.sub_(l1) if l1 else A).mul_(inverse)
    else:
        A_scaled = (A - l1) * inverse if l1 else A * inverse
    B_scaled = B * inverse
    torch.diagonal(B_scaled, dim1=-2, dim2=-1).zero_()
    return A_scaled, B_scaled


def _rows(H: Tensor, A: Tensor, B: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The (A_k, B_k, H_k) row views a sweep reuses (built once per call, not once per row)."""
    if H.dim() == 2:
        return list(zip(A.unbind(0), B.unbind(0), H.unbind(0)))
    return list(zip(A.split(1, dim=1), B.split(1, dim=1), H.split(1, dim=1)))


def _sweep_rows_(H: Tensor, rows, buffer: Tensor) -> None:
    """One pass over the rows of H (in place) with the scaled statistics of :func:`_scaled`."""
    if H.dim() == 2:
        Ht = H.mT
        for A_k, B_k, H_k in rows:
            torch.addmv(A_k, Ht, B_k, alpha=-1, out=buffer)
            torch.clamp_min(buffer, 0, out=H_k)
        return
    for A_k, B_k, H_k in rows:
        torch.baddbmm(A_k, B_k, H, alpha=-1, out=buffer)
        torch.clamp_min(buffer, 0, out=H_k)


def _revive_zero_rows_(H: Tensor) -> None:
    """Replace a row that became exactly zero by ``eps max_k(sum_j H_kj) / n`` (Gillis and Glineur).

    ``eps`` of H's dtype (2.2e-16 in float64, the paper's 1e-16): a fixed 1e-16 in float32
    gives Gram entries 1e-32 times the others, which underflow for data of modest scale.
    """
    row_sums = H.sum(dim=-1, keepdim=True)
    floor = row_sums.amax(dim=-2, keepdim=True) * (torch.finfo(H.dtype).eps / H.shape[-1])
    H.add_((row_sums <= 0) * floor)


def _batch_view(mask: Tensor, H: Tensor) -> Tensor:
    return mask.view(-1, 1, 1) if H.dim() == 3 else mask.view(())


def hals_sweep_(
    H: Tensor,
    A: Tensor,
    B: Tensor,
    l1: float = 0.0,
    l2: float = 0.0,
    keep_rows_positive: bool = False,
) -> Tensor:
    """One HALS sweep over the rows of H (r x n, or B x r x n), in place.

    Parameters
    ----------
    H : Tensor, shape (r, n) or (B, r, n)
        Updated in place (it may be a transposed view, e.g. ``W.mT``).
    A : Tensor, shape like H
        ``W^T X``.
    B : Tensor, shape (r, r) or (B, r, r)
        ``W^T W``.
    l1, l2 : float
        L1 and squared-L2 penalty weights.
    keep_rows_positive : bool
        After the sweep, replace a row that became exactly zero by the constant
        ``eps max_k(sum_j H_kj) / n`` (``eps`` of the dtype) so that the alternating
        scheme can revive it (Gillis and Glineur, 2012, use ``1e-16 max(H)``).

    Returns
    -------
    Tensor
        Squared Frobenius norm of the change of H: 0-dim, or (B,) (no host sync).
    """
    previous = H.clone()
    A_scaled, B_scaled = _scaled(A, B, l1, l2)
    _sweep_rows_(H, _rows(H, A_scaled, B_scaled), _row_buffer(H))
    if keep_rows_positive:
        _revive_zero_rows_(H)
    return (H - previous).square().sum(dim=(-2, -1))


def hals_sweep(H: Tensor, A: Tensor, B: Tensor) -> Tensor:
    """One HALS sweep over the rows of H, out of place and differentiable (autograd, vmap).

    The rows of :func:`hals_sweep_` (``H_k <- max(0, H_k + (A_k - B_k H) / B_kk)`` in turn,
    each row using the rows already updated), as new tensors: for the NMF layer, whose
    steps autograd records. H (r, n) or (B, r, n); A like H; B (r, r) or (B, r, r). No host
    read; a zero diagonal entry is bounded below by the dtype's ``tiny``.
    """
    A_scaled, B_scaled = _scaled(A, B, 0.0, 0.0)
    rows = list(H.unbind(-2))
    for k in range(len(rows)):
        stacked = torch.stack(rows, dim=-2)
        rows[k] = (A_scaled[..., k, :] - (B_scaled[..., k : k + 1, :] @ stacked).squeeze(-2)).clamp_min(0)
    return torch.stack(rows, dim=-2)


def _row_buffer(H: Tensor) -> Tensor:
    return H.new_empty(H.shape[-1]) if H.dim() == 2 else H.new_empty(H.shape[0], 1, H.shape[-1])


def hals_nnls_(
    H: Tensor,
    A: Tensor,
    B: Tensor,
    *,
    max_sweeps: int = 500,
    delta: float = 1e-3,
    l1: float = 0.0,
    l2: float = 0.0,
    keep_rows_positive: bool = False,
    active: Tensor | None = None,
    overwrite_A: bool = False,
) -> None:
    """Repeated HALS sweeps on H (warm start), in place, until the change is small.

    A problem stops after sweep l when ``||H_l - H_{l-1}||_F <= delta ||H_1 - H_0||_F``
    (or when its first change is 0), or after ``max_sweeps`` sweeps. The rule is kept on
    the device: every sweep runs, and a problem that has stopped keeps its H (a masked
    write), so nothing is read back; ``delta=0`` runs exactly ``max_sweeps`` sweeps with
    no bookkeeping at all.

    Parameters
    ----------
    H : Tensor, shape (r, n) or (B, r, n)
        Updated in place; may be a transposed view (``W.mT``).
    A, B :
        ``W^T X`` (like H) and ``W^T W`` ((r, r) or (B, r, r)).
    max_sweeps, delta :
        The stopping rule above.
    l1, l2 : float
        Penalty weights.
    keep_rows_positive : bool
        See :func:`hals_sweep_`.
    active : Tensor of bool, shape () or (B,), optional
        Problems to update; the others keep H unchanged (a converged problem of a batch).
    overwrite_A : bool
        Scale A in place (a caller's fresh product): one temporary like H fewer.
    """
    A_scaled, B_scaled = _scaled(A, B, l1, l2, overwrite_A)
    rows = _rows(H, A_scaled, B_scaled)
    buffer = _row_buffer(H)
    track = delta > 0 and max_sweeps > 1
    threshold = delta * delta
    go = active
    first = None
    previous = torch.empty_like(H) if (track or go is not None) else None  # one buffer for every sweep
    for _ in range(max_sweeps):
        if previous is not None:
            previous.copy_(H)
        _sweep_rows_(H, rows, buffer)
        if go is not None:  # a stopped problem takes its previous H back: exact for weights 0 and 1, one pass
            H.lerp_(previous, (~_batch_view(go, H)).to(H.dtype))
        if not track:
            continue
        # ||H - previous||^2 with the buffer as the difference: one pass, no temporary
        change = torch.linalg.vector_norm(previous.sub_(H), dim=(-2, -1)).square()
        if first is None:
            first = change
            keep_going = change > 0
        else:
            keep_going = change > threshold * first
        go = keep_going if go is None else go & keep_going
    if keep_rows_positive:
        # a row's own update never reads its previous value, so reviving a zero row once, after
        # the last sweep, is the per-sweep revival of Gillis and Glineur up to its eps-sized effect
        # on the other rows
        _revive_zero_rows_(H)


def nnls_columns(
    X: Tensor,
    W: Tensor,
    H0: Tensor | None = None,
    *,
    max_sweeps: int = 500,
    delta: float = 1e-6,
) -> Tensor:
    r"""The NNLS weights of every column of X on the columns W: :math:`\arg\min_{H \ge 0}\|X - WH\|_F`.

    Warm-started HALS (:func:`hals_nnls_`) from ``H0`` (zeros when None). The H-fit of
    separable NMF (W = X(:, K)), of dictionary NMF (W = D(:, K)) and of XRAY's steps.

    Parameters
    ----------
    X : Tensor, shape (m, n)
    W : Tensor, shape (m, r)
    H0 : Tensor, shape (r, n), optional

    Returns
    -------
    Tensor, shape (r, n), new.
    """
    H = X.new_zeros(W.shape[-1], X.shape[-1]) if H0 is None else H0.clamp_min(0)
    hals_nnls_(H, W.mT @ X, W.mT @ W, max_sweeps=max_sweeps, delta=delta)
    return H


def gram_ridge(G: Tensor) -> Tensor:
    """The shift ``eps * max diag(G)`` of each Gram matrix (r x r or (..., r, r)) -> () or (...,).

    Added to the diagonal it makes a rank-deficient Gram system solvable and changes a
    well-posed one only at round-off level."""
    tiny = torch.finfo(G.dtype).tiny
    return torch.finfo(G.dtype).eps * torch.diagonal(G, dim1=-2, dim2=-1).amax(dim=-1).clamp_min(tiny)


def ridged_solve(G: Tensor, B: Tensor) -> Tensor:
    """:math:`(G + \rho I)^{-1} B` with :math:`\rho` = :func:`gram_ridge` (G), batched, without reading the
    device (no singularity check: the ridge makes every system solvable)."""
    eye = torch.eye(G.shape[-1], device=G.device, dtype=G.dtype)
    return torch.linalg.solve_ex(G + gram_ridge(G)[..., None, None] * eye, B, check_errors=False)[0]


def least_squares_start(W: Tensor, X: Tensor) -> Tensor:
    """A nonnegative starting point for NNLS: the (ridged) least-squares solution, clipped at 0."""
    return ridged_solve(W.mT @ W, W.mT @ X).clamp_min(0)
