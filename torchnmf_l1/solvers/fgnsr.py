r"""FGNSR: fast gradient method for nonnegative sparse regression with self-dictionary.

.. math::
    \min_{X \in \Omega}\; \tfrac12 \|M - MX\|_F^2 + \mu\, p^T \operatorname{diag}(X),
    \qquad
    \Omega = \{X \ge 0,\; X_{ii} \le 1,\; w_i X_{ij} \le w_j X_{ii}\}

with M the data (m x n), w its column l1 norms and p a positive vector close to
ones (a small random perturbation from the generator breaks ties between
duplicated columns). Nesterov's accelerated projected gradient with step
:math:`1/\sigma_{\max}(M)^2`, the exact projection
:func:`~torchnmf_l1.kernels.project_omega`, and a restart when the objective rises
(the step is rejected, the momentum reset). Each iteration costs two dense
products, :math:`MX` (m x n x n) and :math:`M^T(MY - M)`, and one projection; MY is
carried as a linear combination of MX's, so the objective comes for free.

The starting point is the SPA solution (X(K, :) = H from the shared NNLS); mu
starts at the value that makes both terms of the objective equal there,
:math:`\mu_0 = \tfrac12\|M - M(:,K)H\|_F^2 / r`, and during the first
``adjust_iters`` iterations it is multiplied every ``adjust_every`` iterations by
:math:`\operatorname{tr}(X) / (r/2 + 1)` (clipped to [1/2, 2]), which moves the
trace towards r/2 + 1. K is read from the r largest diagonal entries of X (or by
SPA on :math:`X^T`); with ``rank=None`` (and ``mu`` given) r is the number of
diagonal entries >= 1/2.

References
----------
N. Gillis and R. Luce, "A fast gradient method for nonnegative sparse regression
with self-dictionary", IEEE Trans. Image Processing 27(1), 2018.
Y. Nesterov, "A method of solving a convex programming problem with convergence
rate O(1/k^2)", Soviet Math. Dokl. 27, 1983.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..params import Boolean, Choice, Integer, Number, OneOf, Param
from ..registry import register_solver
from .separable import SeparableSolver

__all__ = ["FGNSR"]


@register_solver("fgnsr", family="separable")
class FGNSR(SeparableSolver):
    """FGNSR solver (iterative; driven by the fit loop, 500 iterations and tol 1e-6 by default).

    The mu adjustment raises the objective at the first checks; the fit loop never takes
    an increase for convergence, so a positive tol is safe here.
    """

    scales_representatives = True  # subsampled: representatives weighted by sqrt(cluster size), as the authors

    one_shot = False
    detects_rank = True
    fit_defaults = FitDefaults(max_iter=500, tol=1e-6, check_every=10)
    options = {
        "mu": Param(None, OneOf(None, Number(0, closed="neither")), "fixed initial mu; None derives it from the SPA residual (needs rank)"),
        "adjust_mu": Param(True, Boolean(), "move mu so that trace(X) approaches trace_target"),
        "adjust_every": Param(10, Integer(1), "iterations between two adjustments of mu"),
        "adjust_iters": Param(200, Integer(0), "mu is adjusted during the first adjust_iters iterations"),
        "trace_target": Param(None, OneOf(None, Number(0, closed="neither")), "target of trace(X) (None: r/2 + 1)"),
        "extract": Param("diag", Choice("diag", "spa"), "K from the r largest diagonal entries of X, or by SPA on X^T"),
        "weights": Param("l1", Choice("l1", "ones"), "w of Omega: the column l1 norms of M, or all ones"),
        "spa_init": Param(True, Boolean(), "start from the SPA solution (else from X = 0)"),
        "p_noise": Param(1e-2, Number(0), "p = 1 + p_noise * U[0, 1) (from the generator)"),
    }

    def __init__(self, problem, state=None, **options):
        super().__init__(problem, state, **options)
        cfg = self.config
        rank = self.rank
        if rank is None and cfg["mu"] is None:
            raise ValueError("fgnsr with rank=None needs an explicit mu (the rank is then read from the diagonal)")
        M = self.X
        n = M.shape[1]
        self.M = M
        self.w = M.sum(dim=0) if cfg["weights"] == "l1" else M.new_ones(n)
        self.L = torch.linalg.matrix_norm(M, ord=2) ** 2
        u = torch.rand(n, generator=self.generator, device=M.device, dtype=M.dtype)
        self.p = 1 + cfg["p_noise"] * u
        Xs = M.new_zeros(n, n)
        mu = None
        if rank is not None and (cfg["spa_init"] or cfg["mu"] is None):
            K = kernels.spa(M, rank)
            W = M.index_select(1, K)
            H = kernels.nnls_columns(M, W)
            mu = 0.5 * torch.sum((M - W @ H) ** 2) / rank
            if cfg["spa_init"]:
                Xs[K] = H
                Xs = kernels.project_omega(Xs, self.w)
        self.mu = M.new_tensor(cfg["mu"]) if cfg["mu"] is not None else mu.clamp_min(torch.finfo(M.dtype).tiny)
        self.target = cfg["trace_target"] if cfg["trace_target"] is not None else (rank / 2 + 1 if rank else None)
        MX = M @ Xs
        self.momentum = kernels.MomentumState(Xs, MX, Xs, MX, M.new_ones(()), self._objective(MX, Xs))
        self.iteration = 0

    def _objective(self, MX: Tensor, Xs: Tensor) -> Tensor:
        return 0.5 * torch.sum((self.M - MX) ** 2) + self.mu * (self.p @ torch.diagonal(Xs))

    def step(self) -> None:
        """One accelerated projected-gradient iteration (no host sync)."""
        M, state = self.M, self.momentum
        G = M.mT @ (state.ay - M)
        G.diagonal().add_(self.mu * self.p)
        # y - G / L written into G: one pass over the n x n iterate, no new allocation
        Xn = kernels.project_omega(torch.addcdiv(state.y, G, self.L, value=-1, out=G), self.w)
        MXn = M @ Xn
        state = kernels.accelerated_update(state, Xn, MXn, self._objective(MXn, Xn))
        self.iteration += 1
        cfg = self.config
        if (
            cfg["adjust_mu"]
            and self.target is not None
            and self.iteration <= cfg["adjust_iters"]
            and self.iteration % cfg["adjust_every"] == 0
        ):
            ratio = (torch.trace(state.x) / self.target).clamp(0.5, 2.0)
            self.mu = self.mu * ratio
            # the objective changed with mu: restart the momentum from the iterate
            state = kernels.MomentumState(state.x, state.ax, state.x, state.ax, torch.ones_like(state.t),
                                          self._objective(state.ax, state.x))
        self.momentum = state
        self.indices = None

    def objective(self) -> Tensor:
        """Current FGNSR objective (0-dim tensor; no host sync)."""
        return self.momentum.f

    @property
    def solution(self) -> Tensor:
        """The current n x n matrix X of the relaxation."""
        return self.momentum.x

    def select(self) -> Tensor:
        diag = torch.diagonal(self.solution)
        rank = self.rank if self.rank is not None else max(1, int((diag >= 0.5).sum()))
        if self.config["extract"] == "spa":
            return kernels.spa(self.solution.mT.contiguous(), rank)
        return torch.topk(diag, rank).indices

    def report(self) -> dict:
        """``diagonal``: diag(X) of the relaxation (in the selection space)."""
        return {"diagonal": torch.diagonal(self.solution).clone()}
