r"""Solvers of batched nonnegative codes (family ``"nnls"``), the iterations of the NNLS layer.

For a batch of rows x (B x m) and a dictionary W (m x r), every code solves

.. math:: h_b = \arg\min_{h \ge 0}\; D(x_b \mid W h) + \lambda \mathbf{1}^T h

with D the Frobenius loss or the generalised KL divergence. Each step is made of pure
tensor operations (the codes are replaced, never written in place), so autograd can
unroll a fixed number of steps, ``torch.compile`` can trace them and ``torch.func.vmap``
can batch them (:class:`torchnmf_l1.NNLSLayer`).

References
----------
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for
linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009.
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
"""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..problem import NNLSProblem
from ..registry import register_solver
from .base import Solver, SolverOutput

__all__ = ["NNLSSolver", "ProjectedGradientNNLS", "MultiplicativeNNLS"]


class NNLSSolver(Solver):
    """Base of the ``"nnls"`` family.

    Class attributes: ``losses`` (the losses it minimises), ``needs_nonnegative`` (x and W
    must be >= 0), ``active_tol`` (the implicit backward's default threshold of a zero code).
    """

    family = "nnls"
    losses: ClassVar[tuple] = ()
    needs_nonnegative: ClassVar[bool] = False
    active_tol: ClassVar[float] = 0.0
    fit_defaults = FitDefaults(max_iter=100, tol=0.0, check_every=10)

    def __init__(self, problem: NNLSProblem, state=None, **options):
        super().__init__(problem, state, **options)
        self.x, self.W = problem.x, problem.W
        self.G = self.W.mT @ self.W
        self.xW = self.x @ self.W

    @classmethod
    def check_problem(cls, problem: NNLSProblem) -> None:
        if problem.loss not in cls.losses:
            raise ValueError(f"solver {cls.name!r} does not handle loss {problem.loss!r}; it handles {cls.losses}")

    def _device(self):
        return self.x.device

    def objective(self) -> Tensor:
        return kernels.nnls_objective(self.h, self.x, self.W, self.problem.loss, self.problem.l1)

    def finish(self) -> SolverOutput:
        return SolverOutput({"h": self.h})

    @classmethod
    def solve(cls, x: Tensor, W: Tensor, n_iter: int, loss: str = "frobenius", l1: float = 0.0) -> Tensor:
        """The codes after ``n_iter`` steps (differentiable when grad is enabled)."""
        solver = cls(NNLSProblem(x, W, loss, l1))
        for _ in range(n_iter):
            solver.step()
        return solver.h


@register_solver("pg", family="nnls")
class ProjectedGradientNNLS(NNLSSolver):
    r"""FISTA (accelerated projected gradient), Frobenius loss, from zero codes:
    :math:`h \leftarrow \max(0, y - \tfrac1L (y W^TW - xW + \lambda))`,
    :math:`y \leftarrow h + \tfrac{t_k - 1}{t_{k+1}} (h - h_{\mathrm{prev}})` (no restart, so the
    iteration is a fixed differentiable map)."""

    losses = ("frobenius",)

    def __init__(self, problem, state=None, **options):
        super().__init__(problem, state, **options)
        self.step_size = 1.0 / kernels.nnls_lipschitz(self.G)
        self.h = self.xW.new_zeros(self.xW.shape)
        self.y = self.h
        self.t = 1.0

    def step(self) -> None:
        h_next = kernels.nnls_pg_step(self.y, self.G, self.xW, self.step_size, self.problem.l1)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t))
        self.y = h_next + ((self.t - 1.0) / t_next) * (h_next - self.h)
        self.h, self.t = h_next, t_next


@register_solver("mu", family="nnls")
class MultiplicativeNNLS(NNLSSolver):
    """Multiplicative updates (Frobenius or KL) from the least-squares scaling; needs x, W >= 0;
    the codes never reach exact zeros (hence ``active_tol`` 1e-4 in the implicit backward)."""

    losses = ("frobenius", "kl")
    needs_nonnegative = True
    monotone = True
    active_tol = 1e-4

    def __init__(self, problem, state=None, **options):
        super().__init__(problem, state, **options)
        self.h = kernels.nnls_mu_start(self.xW, self.G)

    def step(self) -> None:
        self.h = kernels.nnls_mu_step(self.h, self.x, self.W, self.G, self.xW, self.problem.loss, self.problem.l1)
