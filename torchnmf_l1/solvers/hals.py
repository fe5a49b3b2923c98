r"""Accelerated HALS for Frobenius NMF (Gillis and Glineur, 2012), one problem or a batch.

.. math:: \min_{W, H \ge 0} \tfrac12 \|X - WH\|_F^2 + \text{penalties}

Each outer iteration computes the products with X once (``X H^T`` and ``H H^T``
for W; ``W^T X`` and ``W^T W`` for H, cost O(mnr) or O(nnz r)) and then repeats
the cheap HALS sweeps (O(r^2 m) or O(r^2 n) each) while they pay off: at most
``1 + floor(alpha * rho)`` sweeps, with rho the ratio of the cost of the products
to that of a sweep, and stopping earlier once the change of the factor falls under
``delta`` times the change of the first sweep (a device-side mask: the step never
reads the device). The costs count flops and kernel launches: a sweep is 2 r + 4
launches, so on a small problem, where launches dominate, the model asks for one sweep
(plain HALS) instead of sweeps that cost as much as the products.

With ``beta0 > 0`` the alternating scheme is extrapolated (Ang and Gillis, 2019; their
``FroNMF`` code): H is updated from the extrapolated W_y and extrapolated,
H_y = max(0, H_n + beta (H_n - H)); W is updated from H_y and extrapolated without a
projection, W_y = W_n + beta (W_n - W). The error of the feasible pair (W_n, H_y) comes
from the W update's own products; if it rose, the scheme restarts from the last accepted
(W, H) (balanced) with beta / eta, otherwise beta grows by gamma up to a bound that grows
by gamma_bar (:func:`torchnmf_l1.kernels.extrapolation_update`). Everything is decided per
problem on the device; the state holds the best pair so far, so the objective the fit
loop sees never rises. Memory: 6 (m + n) r numbers per problem besides the state, X and the products.

With entry weights or missing entries (``problem.weights``), each iteration is one sweep
of weighted HALS per factor, exact per entry (:func:`torchnmf_l1.kernels.weighted_hals_update_`):
O(mnr) for dense weights, O(|Omega| r) on the observed entries only.

References
----------
N.-D. Ho, *Nonnegative matrix factorization algorithms and applications*, PhD thesis,
UCLouvain, 2008.
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
A. M. S. Ang and N. Gillis, "Accelerating nonnegative matrix factorization algorithms
using extrapolation", Neural Computation 31(2), 2019.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from ..params import Boolean, Integer, Number, Param
from ..registry import register_solver
from .base import NMFSolver

__all__ = ["AcceleratedHALS"]


def _per_problem(values: Tensor) -> Tensor:
    """A per-problem value (0-dim or (B,)) as a view that broadcasts over the factors' last two dimensions."""
    return values.reshape(values.shape + (1, 1))


@register_solver("hals", family="nmf", default_for=("frobenius",))
class AcceleratedHALS(NMFSolver):
    """Accelerated hierarchical alternating least squares (module docstring)."""

    losses = frozenset({"frobenius"})
    options = {
        "alpha": Param(
            0.1,
            Number(0),
            "weight of the cost ratio rho in the number of inner sweeps. The paper's 0.5 assumes a "
            "sweep costs its flop count; here a sweep is r memory-bound row updates while the products "
            "are compute-bound GEMMs, so a sweep costs about five times its flop share and the default "
            "is 0.1 (measured on CBCL and a 2000 x 1500 matrix, experiments/bench_frobenius.py); 0 gives "
            "plain HALS (one sweep per factor, as scikit-learn's cd)",
        ),
        "delta": Param(
            0.1, Number(0),
            "relative change under which the inner sweeps stop (paper: 0.1); 0 runs the full count "
            "with no change tracked, which on small problems costs about as much as a sweep (100 "
            "extrapolated replicates of 200 x 100 at r = 5: alpha=1, delta=0 reaches scikit-learn's "
            "errors in fewer seconds than alpha=0.5, delta=0.1, experiments/bench_batched.py)",
        ),
        "scale_init": Param(True, Boolean(), "rescale W once at the start so that the scale of WH is optimal"),
        "launch_cost": Param(
            2000.0, Number(0),
            "cost of one kernel launch in the sweep-count model, in flops: about 2 us of dispatch against "
            "a small GEMM (measured at 2 threads, experiments/bench_small.py); 0 counts flops only",
        ),
        "max_inner_sweeps": Param(
            50, Integer(1),
            "upper bound on the inner sweeps per factor update. The delta rule is evaluated on the "
            "device (a step never reads it back), so every sweep up to the count runs; on a tall or "
            "wide X the cost model asks for thousands of sweeps of the small factor (3001 of a 10 x 200 "
            "W at 200 x 1e6), each a few launches, where 10-100 reach the same error sooner "
            "(measured on a planted 200 x 2e5, r = 10)",
        ),
        "beta0": Param(
            0.0, Number(0, 1),
            "initial extrapolation weight of Ang and Gillis's scheme (their default 0.5); 0 (the "
            "default) runs without extrapolation. It reaches lower errors sooner on some problems and "
            "later on others (experiments/extrapolation_cases.py, 30 starts: 200 x 100, r = 5, a median "
            "22 % lower after 300 iterations; 300 x 200, r = 20, 6 % higher), so it is not the default. "
            "Ignored with entry weights or a fixed factor",
        ),
        "eta": Param(1.5, Number(1, closed="neither"), "division of beta at a restart (paper: 1.5)"),
        "gamma": Param(1.01, Number(1), "growth of beta after an accepted step (paper, for HALS: 1.01)"),
        "gamma_bar": Param(1.005, Number(1), "growth of the bound on beta after an accepted step (paper: 1.005)"),
    }

    supports_weights = True

    @classmethod
    def validators(cls) -> tuple:
        def ordered(config):
            if not config["eta"] > config["gamma"] >= config["gamma_bar"]:
                raise ValueError(
                    "solver 'hals' needs eta > gamma >= gamma_bar (Ang and Gillis), got "
                    f"eta={config['eta']!r}, gamma={config['gamma']!r}, gamma_bar={config['gamma_bar']!r}"
                )

        return (ordered,)

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        data = problem.data
        m, n = problem.shape
        r = state.W.shape[-1]
        per_problem_nnz = data.values.numel() / (problem.batch or 1) if data.sparse else m * n
        self.sweeps_W = self.sweep_count(per_problem_nnz, n, m, r)
        self.sweeps_H = self.sweep_count(per_problem_nnz, m, n, r)
        self.delta = self.config["delta"]
        self.data_t = data.T
        # W is kept as the transpose of a contiguous W^T: the rows a W sweep updates are contiguous
        self.Wt = state.W.mT.contiguous()
        state.W = self.Wt.mT
        if self.config["scale_init"] and self.update_W and self.update_H:
            self._scale_()
        self.extrapolate = (self.config["beta0"] > 0 and problem.weights is None
                            and self.update_W and self.update_H)
        if self.extrapolate:
            self._start_extrapolation()

    def sweep_count(self, nnz: float, other: int, side: int, r: int) -> int:
        """``1 + floor(alpha * rho)``, rho = (products + one sweep) / one sweep of the factor with ``side`` rows of W^T."""
        launch = self.config["launch_cost"]
        products = nnz * r + other * r * r + 10 * launch  # two GEMMs and the scaling of their results
        sweep = side * (r + 1) * r + (2 * r + 4) * launch  # r row updates of two launches each
        return min(1 + int(self.config["alpha"] * (products + sweep) / sweep), self.config["max_inner_sweeps"])

    def _scale_(self) -> None:
        # argmin_s ||X - s W H||_F per problem: s = <X, WH> / ||WH||^2
        d, W, H = self.problem.data, self.W, self.H
        if self.problem.weights is not None:
            self.Wt.mul_(kernels.weighted_scale(d.X, W, H, self.problem.weight_values, d.support))
            return
        numerator = (kernels.x_ht(d.X, H) * W).sum(dim=(-2, -1))
        denominator = (kernels.gram(W) * kernels.gram(H, transpose=True)).sum(dim=(-2, -1))
        scale = numerator / denominator.clamp_min(torch.finfo(W.dtype).tiny)
        scale = torch.where(scale > 0, scale, 1.0)
        self.Wt.mul_(_per_problem(scale))

    def _start_extrapolation(self) -> None:
        kernels.cp_balance_([self.W, self.H.mT])
        d = self.problem.data
        self.norm_sq = kernels.problem_norm_sq(d.X, d.offsets)  # 0-dim for a shared X: it broadcasts
        # the accepted iterate, the extrapolated one and the work buffers of the two updates;
        # the state holds the best pair so far
        self.W_accepted, self.H_accepted = self.Wt.clone(), self.H.clone()
        self.W_extrapolated, self.H_extrapolated = self.Wt.clone(), self.H.clone()
        self.W_next, self.H_next = torch.empty_like(self.Wt), torch.empty_like(self.H)
        # the start's objective from the products, as every step's is (no reconstruction of WH)
        self.best = self._objective_from_products(
            kernels.wt_x(self.W, d.X, d.X_t), self.H, kernels.gram(self.W), kernels.gram(self.H, transpose=True),
            self.W, self.H,
        )
        self.momentum = kernels.extrapolation_start(self.best, self.config["beta0"])

    def _objective_from_products(self, XF: Tensor, F: Tensor, G: Tensor, F_gram: Tensor, W: Tensor,
                                 H: Tensor) -> Tensor:
        """The objective at (W, H) from an update's products (:func:`kernels.frobenius_from_products`,
        F one of the two factors as rows) plus the penalties."""
        value = kernels.frobenius_from_products(self.norm_sq, XF, F, G, F_gram)
        penalties = self.problem.penalties
        return value + penalties.value(W, H) if penalties.active else value

    def objective(self) -> Tensor:
        """The objective of the state; with extrapolation, the best pair's, tracked from the
        products of the updates (no reconstruction of WH)."""
        return self.best if self.extrapolate else super().objective()

    def _extrapolated_step(self) -> None:
        d, dt, pen = self.problem.data, self.data_t, self.problem.penalties
        beta = self.momentum.beta
        weight = -_per_problem(beta)
        W_y = self.W_extrapolated.mT
        H_next, W_next = self.H_next, self.W_next
        H_next.copy_(self.H_extrapolated)  # warm starts: the extrapolated iterate (the authors' code)
        kernels.hals_nnls_(
            H_next, kernels.wt_x(W_y, d.X, d.X_t), kernels.gram(W_y), max_sweeps=self.sweeps_H, delta=self.delta,
            l1=pen.l1_H, l2=pen.l2_H, keep_rows_positive=True, overwrite_A=True,
        )
        H_y = torch.lerp(H_next, self.H_accepted, weight, out=self.H_extrapolated).clamp_min_(0)
        XH = kernels.wt_x(H_y.mT, dt.X, dt.X_t)  # H_y X^T, (.., r, m)
        HH = kernels.gram(H_y, transpose=True)
        W_next.copy_(self.W_extrapolated)
        kernels.hals_nnls_(W_next, XH, HH, max_sweeps=self.sweeps_W, delta=self.delta, l1=pen.l1_W, l2=pen.l2_W,
                           keep_rows_positive=True)
        objective = self._objective_from_products(XH, W_next, HH, kernels.gram(W_next.mT), W_next.mT, H_y)
        self.momentum, rise = kernels.extrapolation_update(
            self.momentum, objective, eta=self.config["eta"], gamma=self.config["gamma"],
            gamma_bar=self.config["gamma_bar"],
        )
        better = objective <= self.best
        if self.active is not None:
            better = better & self.active
        take = _per_problem(better).to(H_y.dtype)
        self.Wt.lerp_(W_next, take)
        self.H.lerp_(H_y, take)
        self.best = torch.where(better, objective, self.best)
        # W_y = W_n + beta (W_n - W) from the accepted W before it moves on
        torch.lerp(W_next, self.W_accepted, weight, out=self.W_extrapolated)
        restart = _per_problem(rise)
        accept = (~restart).to(H_y.dtype)
        self.W_accepted.lerp_(W_next, accept)
        self.H_accepted.lerp_(H_next, accept)
        # a restart: the accepted pair, balanced, is the next extrapolated point
        kernels.cp_balance_([self.W_accepted.mT, self.H_accepted.mT], where=restart)
        restart = restart.to(H_y.dtype)
        self.W_extrapolated.lerp_(self.W_accepted, restart)
        self.H_extrapolated.lerp_(self.H_accepted, restart)

    def step(self) -> None:
        if self.problem.weights is not None:
            self._weighted_step()
            return
        if self.extrapolate:
            self._extrapolated_step()
            return
        pen = self.problem.penalties
        if self.update_W:
            dt = self.data_t
            A = kernels.wt_x(self.H.mT, dt.X, dt.X_t)  # H X^T, (.., r, m)
            kernels.hals_nnls_(
                self.Wt, A, kernels.gram(self.H, transpose=True), max_sweeps=self.sweeps_W, delta=self.delta,
                l1=pen.l1_W, l2=pen.l2_W, keep_rows_positive=True, active=self.active, overwrite_A=True,
            )
        if self.update_H:
            d = self.problem.data
            kernels.hals_nnls_(
                self.H, kernels.wt_x(self.W, d.X, d.X_t), kernels.gram(self.W), max_sweeps=self.sweeps_H,
                delta=self.delta, l1=pen.l1_H, l2=pen.l2_H, keep_rows_positive=True, active=self.active,
                overwrite_A=True,
            )

    def _weighted_step(self) -> None:
        # One sweep per factor (the residual changes with every row, so there is no cheap
        # inner sweep to repeat); the residual is recomputed once per iteration, so that
        # round-off does not accumulate in it.
        d, weights = self.problem.data, self.problem.weight_values
        if d.sparse or self.Wt.dim() == 2:
            self._weighted_sweeps(self.Wt, self.H, d.X)
            return
        m, n = self.problem.shape  # replicates: a few at a time, never B residuals of m x n at once
        for chunk in kernels.problem_chunks(self.Wt.shape[0], m, n):
            self._weighted_sweeps(self.Wt[chunk], self.H[chunk], d.X if d.X.dim() == 2 else d.X[chunk])

    def _weighted_sweeps(self, Wt, H, X) -> None:
        d, pen, weights = self.problem.data, self.problem.penalties, self.problem.weight_values
        residual = kernels.weighted_residual(X, Wt.mT, H, weights, d.support)
        rows, cols = (d.support.rows, d.support.cols) if d.sparse else (None, None)
        if self.update_W:
            if d.sparse:
                kernels.weighted_hals_update_(Wt, H, residual, weights, gather=cols, scatter=rows,
                                              l1=pen.l1_W, l2=pen.l2_W)
            else:
                kernels.weighted_hals_update_(Wt, H, residual.mT, weights.mT, l1=pen.l1_W, l2=pen.l2_W)
        if self.update_H:
            kernels.weighted_hals_update_(H, Wt, residual, weights, gather=rows, scatter=cols,
                                          l1=pen.l1_H, l2=pen.l2_H)
