r"""Matching factor columns to dictionary atoms (dictionary NMF, dictionary-constrained CPD).

Given U (p x r) and a dictionary D (p x d), choose K (r indices) maximising the total
cosine similarity :math:`\sum_i \langle u_i, d_{K_i}\rangle / (\|u_i\|\|d_{K_i}\|)`,
either freely (argmax per column), with distinct atoms (a rectangular assignment
problem), or, for several dictionaries :math:`D_1, \dots, D_N` stacked side by side,
with a required number (or range) of atoms from each.

The assignment problems are solved by ``scipy.optimize.linear_sum_assignment`` on the
host: one r x d score matrix crosses to the CPU per call (the only host sync).

References
----------
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
H. W. Kuhn, "The Hungarian method for the assignment problem", Naval Research
Logistics Quarterly 2, 1955.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["atom_scores", "match_atoms", "subspace_atoms", "proximal_weight", "atom_gap"]

_NEG = -1e9  # forbidden pair in a maximisation (scores lie in [-1, 1])


def atom_scores(U: Tensor, D: Tensor) -> Tensor:
    """Cosine similarities (r x d) between the columns of U (p x r) and of D (p x d)."""
    tiny = torch.finfo(U.dtype).tiny
    Un = U / torch.linalg.vector_norm(U, dim=0, keepdim=True).clamp_min(tiny)
    Dn = D / torch.linalg.vector_norm(D, dim=0, keepdim=True).clamp_min(tiny)
    return Un.transpose(0, 1) @ Dn


def match_atoms(U: Tensor, D: Tensor, *, distinct: bool = True, groups=None, counts=None) -> Tensor:
    r"""Indices K (int64, on U's device) of the atoms of D best matching the columns of U.

    Parameters
    ----------
    U : Tensor, shape (p, r)
    D : Tensor, shape (p, d)
    distinct : bool
        Every column gets a different atom (needs r <= d).
    groups : sequence of int, optional
        Sizes (d_1, ..., d_N) of the dictionaries stacked in D (sum = d).
    counts : sequence of int or (int, int), optional
        With ``groups``: the number of atoms (or an inclusive range lo..hi) to take
        from each dictionary; the lower bounds must sum to <= r <= the upper bounds.

    Returns
    -------
    Tensor of int64, shape (r,)
    """
    S = atom_scores(U, D)
    r, d = S.shape
    if groups is None:
        if not distinct:
            return S.argmax(dim=1)
        rows, cols = _lsa(S.detach().cpu().numpy())
        K = np.empty(r, dtype=np.int64)
        K[rows] = cols
        return torch.as_tensor(K, device=U.device)
    bounds = normalize_counts(groups, counts, r, distinct)
    scores = S.detach().cpu().double().numpy()
    K = _grouped_distinct(scores, groups, bounds, r) if distinct else _grouped_free(scores, groups, bounds, r)
    return torch.as_tensor(K, device=U.device)


def normalize_counts(groups, counts, r: int, distinct: bool) -> list:
    """Validate (groups, counts) against r; return [(lo, hi)] per dictionary."""
    groups = [int(g) for g in groups]
    if counts is None:
        raise ValueError("counts must be given with several dictionaries (one int or (lo, hi) per dictionary)")
    counts = list(counts)
    if len(counts) != len(groups):
        raise ValueError(f"counts must have one entry per dictionary ({len(groups)}), got {len(counts)}")
    bounds = []
    for i, c in enumerate(counts):
        lo, hi = (c, c) if isinstance(c, (int, np.integer)) else tuple(c)
        if not (0 <= lo <= hi):
            raise ValueError(f"count of dictionary {i} must satisfy 0 <= lo <= hi, got {c!r}")
        if distinct and lo > groups[i]:
            raise ValueError(
                f"dictionary {i} has {groups[i]} atoms but at least {lo} distinct atoms are required from it"
            )
        bounds.append((int(lo), int(min(hi, r, groups[i]) if distinct else min(hi, r))))
    lo_sum, hi_sum = sum(b[0] for b in bounds), sum(b[1] for b in bounds)
    if not lo_sum <= r <= hi_sum:
        raise ValueError(f"the counts allow between {lo_sum} and {hi_sum} atoms in all, but rank r = {r}")
    return bounds


def _lsa(scores: np.ndarray):
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(scores, maximize=True)


def _grouped_free(scores, groups, bounds, r):
    """Atoms may repeat: assign rows to duplicated per-dictionary best-score columns."""
    offsets = np.concatenate([[0], np.cumsum(groups)])
    best_atom, columns, owner = [], [], []
    bonus = 4.0 * (r + 1)  # makes every mandatory slot worth filling first
    for g, (lo, hi) in enumerate(bounds):
        block = scores[:, offsets[g] : offsets[g + 1]]
        best_atom.append(offsets[g] + block.argmax(axis=1))
        best = block.max(axis=1)
        for slot in range(hi):
            columns.append(best + (bonus if slot < lo else 0.0))
            owner.append(g)
    rows, cols = _lsa(np.stack(columns, axis=1))
    K = np.empty(r, dtype=np.int64)
    for i, c in zip(rows, cols):
        K[i] = best_atom[owner[c]][i]
    return K


def _grouped_distinct(scores, groups, bounds, r):
    """Distinct atoms with lo_g <= #atoms from D_g <= hi_g, as one square assignment.

    Each dictionary keeps only its candidate atoms (the union of every row's top-r
    atoms in it: an optimal choice never needs another). Rows: the r columns of U,
    then for dictionary g, (n_g - hi_g) "forced" dummy rows that can take only its
    atoms and (hi_g - lo_g) "optional" dummy rows that take its atoms or one of
    r - sum(lo) "null" columns. All candidate atoms are consumed, so U's columns take
    exactly n_g - (n_g - hi_g) - (hi_g - lo_g) + nulls_g = lo_g + nulls_g atoms of D_g.
    """
    offsets = np.concatenate([[0], np.cumsum(groups)])
    candidates = []
    for g in range(len(groups)):
        block = scores[:, offsets[g] : offsets[g + 1]]
        top = min(r, block.shape[1])
        picks = np.argpartition(-block, top - 1, axis=1)[:, :top] if top < block.shape[1] else np.tile(np.arange(block.shape[1]), (r, 1))
        candidates.append(offsets[g] + np.unique(picks))
    atoms = np.concatenate(candidates)
    owner = np.concatenate([np.full(len(c), g) for g, c in enumerate(candidates)])
    n_null = r - sum(lo for lo, _ in bounds)
    n_cols = len(atoms) + n_null
    blocks = [np.concatenate([scores[:, atoms], np.full((r, n_null), _NEG)], axis=1)]
    for g, (lo, hi) in enumerate(bounds):
        n_g = len(candidates[g])
        own = np.where(owner == g, 0.0, _NEG)
        forced = np.concatenate([own, np.full(n_null, _NEG)])
        optional = np.concatenate([own, np.zeros(n_null)])
        blocks += [np.tile(forced, (n_g - hi, 1)), np.tile(optional, (hi - lo, 1))]
    cost = np.concatenate(blocks, axis=0)
    rows, cols = _lsa(cost)
    K = np.empty(r, dtype=np.int64)
    for i, c in zip(rows, cols):
        if i < r:
            K[i] = atoms[c]
    return K


def subspace_atoms(Y: Tensor, D: Tensor, r: int, *, max_subsets: int = 200_000, chunk: int = 4096) -> Tensor:
    r"""The r distinct atoms of D whose span best contains the columns of Y.

    .. math:: K = \arg\min_{|K| = r} \|Y - P_{D(:, K)} Y\|_F^2
              = \arg\max_{|K| = r} \|Q_K^T Y\|_F^2

    with :math:`Q_K` an orthonormal basis of the span of D(:, K). When the column
    space of a CP factor is identifiable but the factor is not (rank above the other
    dimensions), this picks its atoms from the unfolding (Cohen and Gillis 2018). All
    :math:`\binom{d}{r}` subsets are scored in batches (batched QR) when there are at
    most ``max_subsets`` of them; otherwise greedy forward selection (add the atom that
    captures most of the remaining energy, as in orthogonal matching pursuit).
    Subsets of linearly dependent atoms are never chosen by the exhaustive search.

    Parameters
    ----------
    Y : Tensor, shape (p, n)
    D : Tensor, shape (p, d)
    r : int, 1 <= r <= min(p, d)

    Returns
    -------
    Tensor of int64, shape (r,), sorted, on Y's device
    """
    if Y.dim() != 2 or D.dim() != 2 or Y.shape[0] != D.shape[0]:
        raise ValueError(f"Y (p x n) and D (p x d) must have the same height, got {tuple(Y.shape)} and {tuple(D.shape)}")
    p, d = D.shape
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= min(p, d):
        raise ValueError(f"r must be an integer in [1, min(p, d) = {min(p, d)}], got {r!r}")
    tiny = torch.finfo(D.dtype).tiny
    Dn = D / torch.linalg.vector_norm(D, dim=0, keepdim=True).clamp_min(tiny)
    # only Y Y^T matters: a p x min(p, n) square root of it stands for Y
    if Y.shape[1] > p:
        vals, vecs = torch.linalg.eigh(Y @ Y.transpose(0, 1))
        Y = vecs * vals.clamp_min(0).sqrt()
    if math.comb(d, r) <= max_subsets:
        best_score, best = None, None
        for subsets in torch.combinations(torch.arange(d, device=D.device), r).reshape(-1, r).split(chunk):
            Q, R = torch.linalg.qr(Dn[:, subsets].permute(1, 0, 2))
            score = (Q.transpose(1, 2) @ Y).pow(2).sum(dim=(1, 2))
            pivots = torch.diagonal(R, dim1=1, dim2=2).abs()
            score = torch.where(pivots.min(dim=1).values > 1e-8 * pivots.max(dim=1).values, score, -torch.inf)
            k = torch.argmax(score)
            if best_score is None or score[k] > best_score:
                best_score, best = score[k], subsets[k]
        return best.sort().values
    chosen = []
    Q = D.new_zeros(p, 0)
    for _ in range(r):
        R = Y - Q @ (Q.transpose(0, 1) @ Y)
        A = Dn - Q @ (Q.transpose(0, 1) @ Dn)  # atoms' parts outside the current span
        norms = torch.linalg.vector_norm(A, dim=0)
        gain = (A.transpose(0, 1) @ R).pow(2).sum(dim=1) / norms.clamp_min(tiny) ** 2
        gain = torch.where(norms > 1e-8, gain, -torch.inf)
        if chosen:
            gain[torch.tensor(chosen, device=D.device)] = -torch.inf
        j = int(torch.argmax(gain))
        chosen.append(j)
        Q = torch.cat([Q, (A[:, j] / norms[j]).unsqueeze(1)], dim=1)
    return torch.tensor(sorted(chosen), dtype=torch.int64, device=D.device)


def atom_gap(U: Tensor, atoms: Tensor) -> tuple[Tensor, Tensor]:
    r"""Squared distance :math:`\|U - \bar D(:, K)\|_F^2` of a factor to its unit-norm atoms, and
    the relative gap :math:`\|U - \bar D(:, K)\|_F / \|\bar D(:, K)\|_F` (0-dim tensors, no sync)."""
    gap_sq = (U - atoms).square().sum()
    return gap_sq, torch.sqrt(gap_sq / atoms.shape[-1])  # ||D_K||_F^2 = r (unit atoms)


def proximal_weight(
    delta: Tensor | None,
    residual_sq: Tensor,
    gap_sq: Tensor,
    gap: Tensor,
    *,
    factor: float = 0.01,
    growth: float = 1.5,
    raise_gap: float = 0.01,
) -> Tensor:
    r"""The growing weight :math:`\delta` of the proximal pull towards the atoms (device side).

    The relaxed models of dictionary NMF and dictionary CPD add
    :math:`\tfrac{\delta}{2}\|U - \bar D(:, K)\|_F^2`. The first call (``delta=None``) sets
    :math:`\delta = \text{factor}\,\|X - UV\|_F^2 / \|U - \bar D(:,K)\|_F^2`, so that the
    pull starts at a small fraction of the fit; later calls multiply it by ``growth``
    while the relative gap exceeds ``raise_gap``.

    Parameters
    ----------
    delta : Tensor (0-dim) or None
    residual_sq : Tensor
        :math:`\|X - UV\|_F^2` (twice the Frobenius objective).
    gap_sq, gap : Tensor
        From :func:`atom_gap`.

    References
    ----------
    J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
    IEEE Trans. Signal Processing 66(7), 2018.
    """
    if delta is None:
        return factor * residual_sq / gap_sq.clamp_min(torch.finfo(gap_sq.dtype).eps)
    return torch.where(gap > raise_gap, delta * growth, delta)
