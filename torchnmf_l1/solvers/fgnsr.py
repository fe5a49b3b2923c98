r"""FGNSR: fast gradient method for nonnegative sparse regression with self-dictionary.

.. math::
    \min_{X \in \Omega}\; \tfrac12 \|M - MX\|_F^2 + \mu\, p^T \operatorname{diag}(X),
    \qquad
    \Omega = \{X \ge 0,\; X_{ii} \le 1,\; w_i X_{ij} \le w_j X_{ii}\}

with M the data (m x n), w all ones (the authors' call; or the column l1 norms of M) and
p a positive vector close to ones (a small random perturbation from the generator
breaks ties between duplicated columns). Nesterov's accelerated projected gradient
with step :math:`1/\sigma_{\max}(M)^2` and the exact projection
:func:`~torchnmf_l1.kernels.project_omega`; by default as the authors' code runs it
(Gillis and Luce's MATLAB FGNSR): from X = 0, every step taken, the momentum reset
when the objective rises (:func:`~torchnmf_l1.kernels.restart_update`), and at each
restart mu moved by the factor 1 -/+ sigma towards trace(X) = r/2 + 1
(:func:`~torchnmf_l1.kernels.bracketing_update`), 1000 iterations. ``momentum="reject"``
with ``mu_rule="trace-ratio"`` and ``spa_init=True`` is the monotone variant of earlier
versions of this package (rejected rises, mu scaled by the trace ratio). Each iteration costs two dense
products, :math:`MX` (m x n x n) and :math:`M^T(MY - M)`, and one projection; MY is
carried as a linear combination of MX's, so the objective comes for free.

mu starts where the two terms of the objective balance at the SPA solution (K by SPA,
H from the shared NNLS): :math:`\mu_0 = (\|M - M(:,K)H\|_F^2 + 10^{-6}\|M\|_F^2) / p(K)^T 1`
(the authors add an absolute 1e-3; relative here, for scale invariance); with
``mu_rule="trace-ratio"`` :math:`\mu_0 = \tfrac12\|M - M(:,K)H\|_F^2 / r`, multiplied
every ``adjust_every`` of the first ``adjust_iters`` iterations by
:math:`\operatorname{tr}(X) / (r/2 + 1)` (clipped to [1/2, 2]). K is read from the r largest diagonal entries of X (or by
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
    """FGNSR solver (iterative; driven by the fit loop, 1000 iterations and tol 1e-6 by default).

    The mu adjustment raises the objective at the first checks; the fit loop never takes
    an increase for convergence, so a positive tol is safe here.
    """

    scales_representatives = True  # subsampled: representatives weighted by sqrt(cluster size), as the authors

    one_shot = False
    detects_rank = True
    fit_defaults = FitDefaults(max_iter=1000, tol=1e-6, check_every=10)
    options = {
        "mu": Param(None, OneOf(None, Number(0, closed="neither")), "fixed initial mu; None derives it from the SPA residual (needs rank)"),
        "adjust_mu": Param(True, Boolean(), "move mu so that trace(X) approaches trace_target"),
        "mu_rule": Param(
            "restart", Choice("restart", "trace-ratio"),
            "'restart' (the authors'): mu0 = (||M - M(:,K)H||_F^2 + e) / p(K), then at every momentum restart "
            "mu *= 1 -/+ sigma towards the trace target, sigma = 0.1 halved at each change of direction; "
            "'trace-ratio': mu0 = ||M - M(:,K)H||_F^2 / (2 r), multiplied every adjust_every iterations "
            "(during the first adjust_iters) by trace(X) / target clipped to [1/2, 2]",
        ),
        "momentum": Param(
            "restart", Choice("restart", "reject"),
            "'restart' (the authors'): every step is taken, a rise resets the momentum (Nesterov's scheme II, "
            "alpha0 = 0.05); 'reject': a step that raises the objective is rejected and the momentum reset, so "
            "the objective never increases (O'Donoghue and Candes)",
        ),
        "adjust_every": Param(10, Integer(1), "mu_rule='trace-ratio': iterations between two adjustments of mu"),
        "adjust_iters": Param(200, Integer(0), "mu_rule='trace-ratio': mu is adjusted during the first adjust_iters iterations"),
        "trace_target": Param(None, OneOf(None, Number(0, closed="neither")), "target of trace(X) (None: r/2 + 1)"),
        "extract": Param("diag", Choice("diag", "spa"), "K from the r largest diagonal entries of X, or by SPA on X^T"),
        "weights": Param("ones", Choice("l1", "ones"), "w of Omega: all ones (the authors' call) or the column l1 norms of M"),
        "spa_init": Param(False, Boolean(), "start from the SPA solution (else from X = 0, the authors')"),
        "p_noise": Param(1e-2, Number(0), "p = 1 + p_noise (U[0, 1) - 1/2) (from the generator), as the authors'"),
    }

    def __init__(self, problem, state=None, **options):
        super().__init__(problem, state, **options)
        cfg = self.config
        rank = self.rank
        if rank is None and cfg["mu"] is None:
            raise ValueError("fgnsr with rank=None needs an explicit mu (the rank is then read from the diagonal)")
        if cfg["mu_rule"] == "restart" and cfg["momentum"] != "restart":
            raise ValueError("fgnsr: mu_rule='restart' adjusts mu at the momentum restarts and needs momentum='restart', "
                             f"got momentum={cfg['momentum']!r}; use mu_rule='trace-ratio' with momentum='reject'")
        M = self.X
        n = M.shape[1]
        self.M = M
        self.w = M.sum(dim=0) if cfg["weights"] == "l1" else M.new_ones(n)
        self.L = torch.linalg.matrix_norm(M, ord=2) ** 2
        u = torch.rand(n, generator=self.generator, device=M.device, dtype=M.dtype)
        self.p = 1 + cfg["p_noise"] * (u - 0.5)
        Xs = M.new_zeros(n, n)
        mu = None
        if rank is not None and (cfg["spa_init"] or cfg["mu"] is None):
            K = kernels.spa(M, rank)
            W = M.index_select(1, K)
            H = kernels.nnls_columns(M, W)
            error = torch.sum((M - W @ H) ** 2)
            if cfg["mu_rule"] == "restart":
                # the authors add 1e-3 so that an exact SPA fit keeps a trace term; 1e-6 ||M||^2
                # here, so that the scale of the data does not change the iterates
                mu = (error + 1e-6 * torch.sum(M * M)) / self.p[K].sum()
            else:
                mu = 0.5 * error / rank
            if cfg["spa_init"]:
                Xs[K] = H
                Xs = kernels.project_omega(Xs, self.w)
        self.mu = M.new_tensor(cfg["mu"]) if cfg["mu"] is not None else mu.clamp_min(torch.finfo(M.dtype).tiny)
        self.target = cfg["trace_target"] if cfg["trace_target"] is not None else (rank / 2 + 1 if rank else None)
        self.sigma, self.direction = M.new_tensor(0.1), M.new_zeros(())
        MX = M @ Xs
        f = self._objective(MX, Xs)
        if cfg["momentum"] == "restart":
            self.momentum = kernels.RestartState(Xs, MX, Xs, MX, M.new_tensor(self.ALPHA0), f,
                                                 torch.zeros((), dtype=torch.bool, device=M.device))
        else:
            self.momentum = kernels.MomentumState(Xs, MX, Xs, MX, M.new_ones(()), f)
        self.iteration = 0

    ALPHA0 = 0.05  # the authors' initial (and restart) momentum parameter

    def _objective(self, MX: Tensor, Xs: Tensor) -> Tensor:
        return 0.5 * torch.sum((self.M - MX) ** 2) + self.mu * (self.p @ torch.diagonal(Xs))

    def step(self) -> None:
        """One accelerated projected-gradient iteration (no host sync)."""
        M, state, cfg = self.M, self.momentum, self.config
        G = M.mT @ (state.ay - M)
        G.diagonal().add_(self.mu * self.p)
        # y - G / L written into G: one pass over the n x n iterate, no new allocation
        Xn = kernels.project_omega(torch.addcdiv(state.y, G, self.L, value=-1, out=G), self.w)
        MXn = M @ Xn
        fn = self._objective(MXn, Xn)
        restarting = cfg["momentum"] == "restart"
        state = kernels.restart_update(state, Xn, MXn, fn, self.ALPHA0) if restarting else \
            kernels.accelerated_update(state, Xn, MXn, fn)
        self.iteration += 1
        adjust = cfg["adjust_mu"] and self.target is not None
        if adjust and cfg["mu_rule"] == "restart":
            self.mu, self.sigma, self.direction = kernels.bracketing_update(
                self.mu, torch.trace(state.x), self.target, self.sigma, self.direction, state.restarted)
        elif adjust and self.iteration <= cfg["adjust_iters"] and self.iteration % cfg["adjust_every"] == 0:
            ratio = (torch.trace(state.x) / self.target).clamp(0.5, 2.0)
            self.mu = self.mu * ratio
            # the objective changed with mu: restart the momentum from the iterate
            f = self._objective(state.ax, state.x)
            state = kernels.RestartState(state.x, state.ax, state.x, state.ax, torch.full_like(state.alpha, self.ALPHA0),
                                         f, torch.zeros_like(state.restarted)) if restarting else \
                kernels.MomentumState(state.x, state.ax, state.x, state.ax, torch.ones_like(state.t), f)
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
