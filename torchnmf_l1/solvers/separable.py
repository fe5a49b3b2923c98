r"""Solvers of near-separable NMF, :math:`X \approx X(:, K) H` with :math:`|K| = r`, :math:`H \ge 0`.

A separable solver sees the data X (m x n, dense) and the rank, selects the
column indices K and, where its method produces them, weights H; the model
(:class:`torchnmf_l1.models.SeparableNMF`) then fits H on all columns with the
shared HALS NNLS. One-shot methods (SPA, SNPA, XRAY, VCA, H2NMF) do the whole
selection in one :meth:`~SeparableSolver.step`; iterative ones (FGNSR) are driven by
:func:`torchnmf_l1.fit.run_fit` like every other solver.

References
----------
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020, Chapter 7.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .. import kernels
from ..kernels.h2nmf import h2nmf_clustering
from ..registry import register_solver

__all__ = ["SeparableSolver", "SPA", "SNPA", "XRAY", "VCA", "H2NMFSelection"]


class SeparableSolver:
    """Base class of the registered separable-NMF solvers.

    Parameters
    ----------
    X : Tensor, shape (m, n)
        Dense nonnegative data.
    rank : int or None
        Number r of columns to select (None only for solvers with ``detects_rank``).
    generator : torch.Generator, optional
        Randomness (VCA, FGNSR's tie-breaking weights).
    **options
        Solver options (``options`` lists them with their defaults); unknown names
        raise ``TypeError``.

    Attributes
    ----------
    indices : Tensor of int64 or None
        The selected columns (selection order) once a step has run.
    H : Tensor or None
        Weights produced by the method (a warm start for the final NNLS), if any.
    """

    name: ClassVar[str] = "separable"
    options: ClassVar[dict] = {}
    one_shot: ClassVar[bool] = True
    detects_rank: ClassVar[bool] = False
    default_max_iter: ClassVar[int] = 1
    default_tol: ClassVar[float] = 0.0

    def __init__(self, X: Tensor, rank: int | None, *, generator: torch.Generator | None = None, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(
                f"solver {self.name!r} got unexpected option(s) {unknown}; its options are {sorted(self.options)}"
            )
        if rank is None and not self.detects_rank:
            raise ValueError(f"solver {self.name!r} needs an integer rank, got None")
        self.X = X
        self.rank = rank
        self.generator = generator
        self.config = {**self.options, **options}
        self.indices: Tensor | None = None
        self.H: Tensor | None = None
        self._half_sq_norm = 0.5 * torch.sum(X * X)

    def select(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Run the whole selection (one-shot methods)."""
        self.indices = self.select()

    def finish(self) -> Tensor:
        """The selected indices once the fit loop is over (selects them if needed)."""
        if self.indices is None:
            self.indices = self.select()
        return self.indices

    def objective(self) -> Tensor:
        r"""Half the squared residual of the orthogonal projection of X on span(X(:, K)).

        :math:`\tfrac12(\|X\|_F^2 - \|Q^T X\|_F^2)`, Q an orthonormal basis of the
        selected columns (0-dim tensor, no host sync); :math:`\tfrac12\|X\|_F^2`
        before any selection. The nonnegative fit comes after, in the model.
        """
        if self.indices is None:
            return self._half_sq_norm
        Q, _ = torch.linalg.qr(self.X.index_select(1, self.indices))
        return (self._half_sq_norm - 0.5 * torch.sum((Q.transpose(0, 1) @ self.X) ** 2)).clamp_min(0)


@register_solver("spa", model="separable")
class SPA(SeparableSolver):
    """Successive projection algorithm (:func:`torchnmf_l1.kernels.spa`), O(mnr).

    Options: ``tie_tol`` (relative tolerance of a near tie, broken by the original norm).
    """

    options = {"tie_tol": 1e-6}

    def select(self) -> Tensor:
        return kernels.spa(self.X, self.rank, tie_tol=self.config["tie_tol"])


@register_solver("snpa", model="separable")
class SNPA(SeparableSolver):
    """Successive nonnegative projection algorithm (:func:`torchnmf_l1.kernels.snpa`).

    Options: ``tie_tol``, ``max_iter`` (fast-gradient iterations per projection).
    """

    options = {"tie_tol": 1e-6, "max_iter": 500}

    def select(self) -> Tensor:
        indices, self.H = kernels.snpa(self.X, self.rank, tie_tol=self.config["tie_tol"], max_iter=self.config["max_iter"])
        return indices


@register_solver("xray", model="separable")
class XRAY(SeparableSolver):
    """XRAY "max" variant (:func:`torchnmf_l1.kernels.xray`); H refitted by HALS NNLS at each step.

    Options: ``max_sweeps``, ``delta`` (the shared NNLS stopping rule).
    """

    options = {"max_sweeps": 500, "delta": 1e-6}

    def select(self) -> Tensor:
        indices, self.H = kernels.xray(self.X, self.rank, max_sweeps=self.config["max_sweeps"], delta=self.config["delta"])
        return indices


@register_solver("vca", model="separable")
class VCA(SeparableSolver):
    """Vertex component analysis (:func:`torchnmf_l1.kernels.vca`), seeded by the model's generator."""

    def select(self) -> Tensor:
        return kernels.vca(self.X, self.rank, generator=self.generator)


@register_solver("h2nmf", model="separable")
class H2NMFSelection(SeparableSolver):
    """H2NMF: r clusters by hierarchical rank-two NMF, one representative column each.

    See :func:`torchnmf_l1.kernels.h2nmf_clustering`; ``clusters`` keeps the labels.
    """

    def select(self) -> Tensor:
        self.clusters = h2nmf_clustering(self.X, self.rank)
        if self.clusters.representatives.numel() < self.rank:
            raise ValueError(
                f"h2nmf found only {self.clusters.representatives.numel()} distinct clusters, fewer than rank={self.rank}"
            )
        return self.clusters.representatives
