r"""Solvers of near-separable NMF, :math:`X \approx X(:, K) H` with :math:`|K| = r`, :math:`H \ge 0`.

A separable solver sees a :class:`~torchnmf_l1.problem.SeparableProblem` (dense X, the
rank) and selects the column indices K; its :meth:`~SeparableSolver.finish` fits H on all
columns with the shared NNLS (:func:`torchnmf_l1.kernels.nnls_columns`) and reports the
relative error (a fraction). One-shot methods (SPA, SNPA, XRAY, VCA, H2NMF) do the whole
selection in one :meth:`~SeparableSolver.step`; iterative ones (FGNSR) are driven by the
fit loop like every other solver.

Any of them runs on cluster representatives with ``problem.subsample = k`` (the "-k"
variants of Gillis and Luce, 2018): :meth:`SeparableSolver.create` then wraps it in
:class:`Subsampled`, which clusters the columns with H2NMF, runs the method on the
representatives, maps the selection back to columns of X and fits H on all columns. As in
the authors' demo, the representatives are scaled by the square root of their cluster
sizes for FGNSR (``scales_representatives``) and left as they are for the other methods
(``problem.subsample_scaling="authors"``); ``"sqrt-size"`` scales them for every method.

References
----------
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020, Chapter 7.
N. Gillis and R. Luce, "A fast gradient method for nonnegative sparse regression
with self-dictionary", IEEE Trans. Image Processing 27(1), 2018.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import ClassVar

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..params import Integer, Number, Param
from ..problem import SeparableProblem
from ..registry import register_solver
from .base import Solver, SolverOutput

__all__ = ["SeparableSolver", "Subsampled", "SPA", "SNPA", "XRAY", "VCA", "H2NMFSelection"]


def _fit_columns(problem: SeparableProblem, indices: Tensor, H0: Tensor | None) -> tuple[dict, dict]:
    """The committed output of a selection: K, W = X(:, K), H by NNLS on all columns, the error."""
    X = problem.X
    W = X.index_select(1, indices)
    H = kernels.nnls_columns(X, W, H0, max_sweeps=problem.nnls_max_sweeps, delta=problem.nnls_delta)
    error = kernels.relative_error(X, W, H)
    return {"indices": indices, "W": W, "H": H}, {"indices": indices.tolist(), "relative_error": float(error)}


class SeparableSolver(Solver):
    """Base class of the registered separable-NMF solvers (family ``"separable"``).

    Attributes
    ----------
    X : Tensor, shape (m, n)
        The columns the selection works on.
    indices : Tensor of int64 or None
        The selected columns (selection order) once a step has run.
    H : Tensor or None
        Weights produced by the method (a warm start for the final NNLS), if any.
    """

    family = "separable"
    one_shot: ClassVar[bool] = True
    detects_rank: ClassVar[bool] = False
    #: a subsampled fit scales the representatives by sqrt(cluster size) (subsample_scaling="authors")
    scales_representatives: ClassVar[bool] = False
    fit_defaults = FitDefaults(max_iter=1, tol=0.0, check_every=1)

    def __init__(self, problem: SeparableProblem, state=None, **options):
        super().__init__(problem, state, **options)
        self.X = problem.X
        self.rank = problem.rank
        self.generator = problem.generator
        self.indices: Tensor | None = None
        self.H: Tensor | None = None
        self._half_sq_norm = 0.5 * torch.sum(self.X * self.X)
        self._started = time.perf_counter()

    @classmethod
    def check_problem(cls, problem: SeparableProblem) -> None:
        if problem.rank is None and not cls.detects_rank:
            raise ValueError(f"solver {cls.name!r} needs an integer rank, got None")

    @classmethod
    def create(cls, problem: SeparableProblem, state=None, **options) -> Solver:
        if problem.subsample is not None:
            return Subsampled(problem, cls, **options)
        return cls(problem, state, **options)

    def _device(self) -> torch.device:
        return self.X.device

    def select(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self) -> None:
        """Run the whole selection (one-shot methods: once; later steps have nothing to do).

        A one-shot selection is a whole algorithm with its own, data-dependent control flow
        (SNPA's per-column stopping, H2NMF's tree), not an iteration to capture."""
        if self.indices is None:
            self.indices = self.select()

    def selection(self) -> tuple[Tensor, Tensor | None]:
        """The selected indices (selecting them if no step ran) and the method's own weights."""
        if self.indices is None:
            self.indices = self.select()
        return self.indices, self.H

    def objective(self) -> Tensor:
        r"""Half the squared residual of the orthogonal projection of X on span(X(:, K)).

        :math:`\tfrac12(\|X\|_F^2 - \|Q^T X\|_F^2)`, Q an orthonormal basis of the
        selected columns (0-dim tensor, no host sync); :math:`\tfrac12\|X\|_F^2`
        before any selection. The nonnegative fit comes in :meth:`finish`.
        """
        if self.indices is None:
            return self._half_sq_norm
        Q, _ = torch.linalg.qr(self.X.index_select(1, self.indices))
        return (self._half_sq_norm - 0.5 * torch.sum((Q.mT @ self.X) ** 2)).clamp_min(0)

    def finish(self) -> SolverOutput:
        selected = time.perf_counter()
        indices, H = self.selection()
        warm = H.clamp_min(0) if H is not None and H.shape == (indices.numel(), self.X.shape[1]) else None
        factors, extra = _fit_columns(self.problem, indices, warm)
        extra["seconds"] = {"cluster": 0.0, "select": selected - self._started, "nnls": time.perf_counter() - selected}
        extra.update(self.report())
        return SolverOutput(factors, extra)

    def report(self) -> dict:
        """Method-specific numbers for ``FitResult.extra``."""
        return {}


class Subsampled(Solver):
    """Any separable solver run on the representatives of H2NMF clusters ("-k" variants).

    Built by :meth:`SeparableSolver.create` when ``problem.subsample = k``: clusters the
    columns of X into k groups (:func:`~torchnmf_l1.kernels.h2nmf_clustering`), keeps one
    representative per cluster (scaled by the square root of its size when
    ``problem.subsample_scaling`` says so), runs the solver on them, maps its selection back
    to columns of X and fits H on all columns.
    """

    family = "separable"

    def __init__(self, problem: SeparableProblem, solver_cls: type, **options):
        start = time.perf_counter()
        self.name = solver_cls.name
        self.fit_defaults = solver_cls.fit_defaults
        self.problem = problem
        self.state = None
        self.active = None
        self.config = solver_cls.check_options(options)
        X, k = problem.X, problem.subsample
        self.clusters = kernels.h2nmf_clustering(X, k)
        reps = self.clusters.representatives
        if problem.rank is not None and reps.numel() < problem.rank:
            raise ValueError(f"subsample={k} gave only {reps.numel()} clusters, fewer than rank={problem.rank}")
        representatives = X.index_select(1, reps)
        scaling = problem.subsample_scaling
        if scaling == "sqrt-size" or (scaling == "authors" and solver_cls.scales_representatives):
            representatives = representatives * self.clusters.sizes.to(X.dtype).sqrt()
        self.cluster_seconds = time.perf_counter() - start
        self.inner = solver_cls(replace(problem, X=representatives, subsample=None), None, **options)

    def step(self) -> None:
        self.inner.step()

    def objective(self) -> Tensor:
        return self.inner.objective()

    def at_check(self, tol):
        return self.inner.at_check(tol)

    def finish(self) -> SolverOutput:
        selected = time.perf_counter()
        local, _ = self.inner.selection()
        indices = self.clusters.representatives[local]
        factors, extra = _fit_columns(self.problem, indices, None)
        extra["seconds"] = {
            "cluster": self.cluster_seconds,
            "select": selected - self.inner._started,
            "nnls": time.perf_counter() - selected,
        }
        extra.update(self.inner.report())
        factors["clusters"] = self.clusters
        return SolverOutput(factors, extra)


@register_solver("spa", family="separable")
class SPA(SeparableSolver):
    """Successive projection algorithm (:func:`torchnmf_l1.kernels.spa`), O(mnr)."""

    options = {"tie_tol": Param(1e-6, Number(0), "relative tolerance of a near tie, broken by the original norm")}

    def select(self) -> Tensor:
        return kernels.spa(self.X, self.rank, tie_tol=self.config["tie_tol"])


@register_solver("snpa", family="separable")
class SNPA(SeparableSolver):
    """Successive nonnegative projection algorithm (:func:`torchnmf_l1.kernels.snpa`)."""

    options = {
        "tie_tol": Param(1e-6, Number(0), "relative tolerance of a near tie, broken by the original norm"),
        "max_iter": Param(
            200, Integer(1),
            "at most this many fast-gradient iterations per projection (the authors' maxitn; 500 before: "
            "the same K on Urban r = 6, 8 and Moffett r = 3, 4 in 1.2-1.8x less time)",
        ),
    }

    def select(self) -> Tensor:
        indices, self.H = kernels.snpa(self.X, self.rank, tie_tol=self.config["tie_tol"], max_iter=self.config["max_iter"])
        return indices


@register_solver("xray", family="separable")
class XRAY(SeparableSolver):
    """XRAY "max" variant (:func:`torchnmf_l1.kernels.xray`); H refitted by NNLS at each step."""

    options = {
        "max_sweeps": Param(500, Integer(1), "HALS sweeps of each NNLS refit"),
        "delta": Param(1e-6, Number(0), "stopping rule of the NNLS refits"),
    }

    def select(self) -> Tensor:
        indices, self.H = kernels.xray(self.X, self.rank, max_sweeps=self.config["max_sweeps"], delta=self.config["delta"])
        return indices


@register_solver("vca", family="separable")
class VCA(SeparableSolver):
    """Vertex component analysis (:func:`torchnmf_l1.kernels.vca`), seeded by the problem's generator."""

    def select(self) -> Tensor:
        return kernels.vca(self.X, self.rank, generator=self.generator)


@register_solver("h2nmf", family="separable")
class H2NMFSelection(SeparableSolver):
    """H2NMF: r clusters by hierarchical rank-two NMF, one representative column each.

    See :func:`torchnmf_l1.kernels.h2nmf_clustering`; ``clusters`` keeps the labels.
    """

    def select(self) -> Tensor:
        self.clusters = kernels.h2nmf_clustering(self.X, self.rank)
        if self.clusters.representatives.numel() < self.rank:
            raise ValueError(
                f"h2nmf found only {self.clusters.representatives.numel()} distinct clusters, fewer than rank={self.rank}"
            )
        return self.clusters.representatives
