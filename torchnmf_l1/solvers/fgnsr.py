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
from ..registry import register_solver
from .separable import SeparableSolver

__all__ = ["FGNSR"]


@register_solver("fgnsr", model="separable")
class FGNSR(SeparableSolver):
    """FGNSR solver (iterative; driven by :func:`torchnmf_l1.fit.run_fit`).

    Options
    -------
    mu : float or None
        Fixed initial mu; None derives it from the SPA residual (needs ``rank``).
    adjust_mu : bool
        Move mu so that trace(X) approaches ``trace_target`` (default r/2 + 1).
    adjust_every, adjust_iters : int
        Adjust mu every ``adjust_every`` iterations during the first ``adjust_iters``.
    extract : {"diag", "spa"}
        K from the r largest diagonal entries of X or from SPA on X^T.
    weights : {"l1", "ones"}
        w of Omega: column l1 norms of M, or all ones.
    spa_init : bool
        Start from the SPA solution (else from X = 0).
    p_noise : float
        p = 1 + p_noise * U[0, 1) (from the generator).

    Fitted by :func:`~torchnmf_l1.fit.run_fit` with ``default_max_iter`` = 500 and
    ``default_tol`` = 1e-6 (relative change of the objective between checks).
    """

    one_shot = False
    detects_rank = True
    default_max_iter = 500
    # the mu adjustment raises the objective at the first checks; the fit loop does not
    # take an increase larger than tol as convergence, so a positive tol is safe here
    default_tol = 1e-6
    options = {
        "mu": None,
        "adjust_mu": True,
        "adjust_every": 10,
        "adjust_iters": 200,
        "trace_target": None,
        "extract": "diag",
        "weights": "l1",
        "spa_init": True,
        "p_noise": 1e-2,
    }

    def __init__(self, X: Tensor, rank, *, generator=None, **options):
        super().__init__(X, rank, generator=generator, **options)
        cfg = self.config
        if cfg["extract"] not in ("diag", "spa"):
            raise ValueError(f"extract must be 'diag' or 'spa', got {cfg['extract']!r}")
        if cfg["weights"] not in ("l1", "ones"):
            raise ValueError(f"weights must be 'l1' or 'ones', got {cfg['weights']!r}")
        if rank is None and cfg["mu"] is None:
            raise ValueError("fgnsr with rank=None needs an explicit mu (the rank is then read from the diagonal)")
        M = X
        n = M.shape[1]
        self.M = M
        self.w = M.sum(dim=0) if cfg["weights"] == "l1" else M.new_ones(n)
        self.L = torch.linalg.matrix_norm(M, ord=2) ** 2
        u = torch.rand(n, generator=generator, device=M.device, dtype=M.dtype)
        self.p = 1 + cfg["p_noise"] * u
        Xs = M.new_zeros(n, n)
        mu = None
        if rank is not None and (cfg["spa_init"] or cfg["mu"] is None):
            K = kernels.spa(M, rank)
            W = M.index_select(1, K)
            H = M.new_zeros(rank, n)
            kernels.hals_nnls_(H, W.transpose(0, 1) @ M, W.transpose(0, 1) @ W, max_sweeps=500, delta=1e-6)
            mu = 0.5 * torch.sum((M - W @ H) ** 2) / rank
            if cfg["spa_init"]:
                Xs[K] = H
                Xs = kernels.project_omega(Xs, self.w)
        self.mu = M.new_tensor(cfg["mu"]) if cfg["mu"] is not None else mu.clamp_min(torch.finfo(M.dtype).tiny)
        self.target = cfg["trace_target"] if cfg["trace_target"] is not None else (rank / 2 + 1 if rank else None)
        self.Xs = Xs
        self.MX = M @ Xs
        self.Y = Xs.clone()
        self.MY = self.MX.clone()
        self.t = M.new_ones(())
        self.f = self._objective(self.MX, Xs)
        self.iteration = 0

    def _objective(self, MX: Tensor, Xs: Tensor) -> Tensor:
        return 0.5 * torch.sum((self.M - MX) ** 2) + self.mu * (self.p @ torch.diagonal(Xs))

    def step(self) -> None:
        """One accelerated projected-gradient iteration (in place, no host sync)."""
        M = self.M
        G = M.transpose(0, 1) @ (self.MY - M)
        G.diagonal().add_(self.mu * self.p)
        # Y - G / L written into G: one pass over the n x n iterate, no new allocation
        Xn = kernels.project_omega(torch.addcdiv(self.Y, G, self.L, value=-1, out=G), self.w)
        MXn = M @ Xn
        fn = self._objective(MXn, Xn)
        rise = fn > self.f
        t_next = 0.5 * (1 + torch.sqrt(1 + 4 * self.t * self.t))
        beta = torch.where(rise, torch.zeros_like(t_next), (self.t - 1) / t_next)
        X_new = torch.where(rise, self.Xs, Xn)
        MX_new = torch.where(rise, self.MX, MXn)
        self.Y = torch.lerp(X_new, self.Xs, -beta)  # X_new + beta (X_new - Xs) in one pass
        self.MY = MX_new + beta * (MX_new - self.MX)
        self.t = torch.where(rise, torch.ones_like(t_next), t_next)
        self.f = torch.where(rise, self.f, fn)
        self.Xs, self.MX = X_new, MX_new
        self.iteration += 1
        cfg = self.config
        if (
            cfg["adjust_mu"]
            and self.target is not None
            and self.iteration <= cfg["adjust_iters"]
            and self.iteration % cfg["adjust_every"] == 0
        ):
            ratio = (torch.trace(self.Xs) / self.target).clamp(0.5, 2.0)
            self.mu = self.mu * ratio
            self.f = self._objective(self.MX, self.Xs)
            self.Y, self.MY, self.t = self.Xs, self.MX, torch.ones_like(self.t)
        self.indices = None

    def objective(self) -> Tensor:
        """Current FGNSR objective (0-dim tensor; no host sync)."""
        return self.f

    @property
    def solution(self) -> Tensor:
        """The current n x n matrix X of the relaxation."""
        return self.Xs

    def select(self) -> Tensor:
        diag = torch.diagonal(self.Xs)
        rank = self.rank if self.rank is not None else max(1, int((diag >= 0.5).sum()))
        if self.config["extract"] == "spa":
            return kernels.spa(self.Xs.transpose(0, 1).contiguous(), rank)
        return torch.topk(diag, rank).indices
