r"""The baselines of the L1-NMF paper's comparisons (its Table 7.2 and Figures 7.1/7.2).

* ``"ns"``: Nesterov smoothing. Each iteration updates W, then H, by 30 averaged projected
  gradient steps on the L1 loss smoothed by its dual with width :math:`\sigma_k q_i`
  (:func:`torchnmf_l1.kernels.smoothed_l1_steps_`), the smoothing decreasing as
  :math:`\sigma_k = \sigma_0 / k` over the iterations.
* ``"sub"``: projected subgradient, W and H at once, step :math:`t_0 / (k + 1)` (option ``step``, the
  paper's :math:`\beta`)
  (:func:`torchnmf_l1.kernels.l1_subgradient_step_`).
* ``"l21-mu"``: the multiplicative updates of Kong, Ding and Huang for the L2,1 loss
  :math:`\sum_j \|X_{:j} - (WH)_{:j}\|_2` (loss ``"l21"``): a column-reweighted Frobenius MU
  (:func:`torchnmf_l1.kernels.l21_column_weights`), non-increasing.

Settings follow Seraghiti, Gillis et al.'s code (``sigma = 0.5``, 30 inner steps;
``step = 1e-3``), for data of max 1; here :math:`\sigma_0` is relative to
:math:`\sqrt{\max X}`, the scale of a factor entry, so that the iterates of ``c X`` are those
of X scaled (the subgradient step is scale-free as it is). Dense X, one problem or a batch;
no step reads the device.

References
----------
G. Seraghiti, N. Gillis et al., "Weighted L1 NMF for data with false zeros", arXiv
2603.29715 (code: github.com/giovanniseraghiti/wL1-NMF, src/NS.jl, SUB.jl, l21NMF.jl).
Y. Nesterov, "Smooth minimization of non-smooth functions", Math. Programming 103, 2005.
D. Kong, C. Ding and H. Huang, "Robust nonnegative matrix factorization using L21-norm",
CIKM 2011.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .. import kernels
from ..params import Integer, Number, Param
from ..registry import register_solver
from .base import NMFSolver

__all__ = ["NesterovSmoothingL1", "SubgradientL1", "L21MultiplicativeUpdates"]


def _problem_scale(X: Tensor) -> Tensor:
    """sqrt(max X) per problem: 0-dim, or (B,) for a (B, m, n) X."""
    top = X.amax(dim=(-2, -1)) if X.dim() == 3 else X.amax()
    return top.clamp_min(torch.finfo(X.dtype).tiny).sqrt()


class _Masked(NMFSolver):
    """Dense baselines: an update of the whole state, undone for the problems of a batch
    that have stopped (``active``)."""

    supports_sparse = False
    default_init = "l1-init"

    @classmethod
    def check_problem(cls, problem) -> None:
        super().check_problem(problem)
        pen = problem.penalties
        if cls.losses == frozenset({"l1"}) and (pen.l2_W or pen.l2_H):
            raise ValueError(f"solver {cls.name!r} handles L1 penalties only, got l2_reg_W={pen.l2_W!r}, l2_reg_H={pen.l2_H!r}")

    def _keep_stopped(self, W_before: Tensor | None, H_before: Tensor | None) -> None:
        if self.active is None or W_before is None:
            return
        keep = self.active.view(-1, 1, 1)
        self.W.copy_(torch.where(keep, self.W, W_before))
        self.H.copy_(torch.where(keep, self.H, H_before))

    def _snapshot(self):
        if self.active is None:
            return None, None
        return self.W.clone(), self.H.clone()


@register_solver("ns", family="nmf")
class NesterovSmoothingL1(_Masked):
    """Nesterov smoothing for L1-NMF (the paper's NS baseline); see the module docstring."""

    losses = frozenset({"l1"})
    monotone = False
    options: ClassVar[dict] = {
        "sigma": Param(0.5, Number(0, closed="neither"), "initial smoothing width sigma_0, relative to sqrt(max X)"),
        "inner": Param(30, Integer(1), "projected gradient steps per factor and iteration"),
    }

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        self.sigma0 = self.config["sigma"] * _problem_scale(problem.data.X)
        self.data_t = problem.data.T
        self.iteration = 0

    def step(self) -> None:
        self.iteration += 1
        sigma = self.sigma0 / self.iteration
        before = self._snapshot()
        pen, inner = self.problem.penalties, self.config["inner"]
        if self.update_W:
            kernels.smoothed_l1_steps_(self.W.mT, self.H.mT, self.data_t.X, sigma, inner, l1=pen.l1_W)
        if self.update_H:
            kernels.smoothed_l1_steps_(self.H, self.W, self.problem.data.X, sigma, inner, l1=pen.l1_H)
        self._keep_stopped(*before)


@register_solver("sub", family="nmf")
class SubgradientL1(_Masked):
    """Projected subgradient for L1-NMF (the paper's SUB baseline); see the module docstring."""

    losses = frozenset({"l1"})
    monotone = False
    options: ClassVar[dict] = {
        "step": Param(1e-3, Number(0, closed="neither"),
                      "initial step (the paper's beta; a name NMF's beta-divergence takes); iteration k steps step / (k + 1)"),
    }

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        self.iteration = 0

    def step(self) -> None:
        self.iteration += 1
        before = self._snapshot()
        pen = self.problem.penalties
        W_old = self.W.clone() if not self.update_W else None
        H_old = self.H.clone() if not self.update_H else None
        kernels.l1_subgradient_step_(self.W, self.H, self.problem.data.X, self.config["step"] / (self.iteration + 1),
                                     l1_W=pen.l1_W, l1_H=pen.l1_H)
        if W_old is not None:
            self.W.copy_(W_old)
        if H_old is not None:
            self.H.copy_(H_old)
        self._keep_stopped(*before)


@register_solver("l21-mu", family="nmf", default_for=("l21",))
class L21MultiplicativeUpdates(_Masked):
    """Multiplicative updates for the L2,1 loss (Kong, Ding and Huang, 2011): W then H with
    the column weights of the current residual."""

    losses = frozenset({"l21"})
    monotone = True
    default_init = "nndsvda"
    options: ClassVar[dict] = {}

    def step(self) -> None:
        X, W, H = self.problem.data.X, self.W, self.H
        pen = self.problem.penalties
        d = kernels.l21_column_weights(kernels.column_residual_norms(X, W, H)).unsqueeze(-2)  # (1, n) or (B, 1, n)
        if self.update_W:
            HD = H * d
            kernels.mu_update_(W.mT, (HD @ X.mT), (HD @ H.mT) @ W.mT, 1.0, pen.l1_W, pen.l2_W, active=self.active)
        if self.update_H:
            kernels.mu_update_(H, (W.mT @ X) * d, (kernels.gram(W) @ H) * d, 1.0, pen.l1_H, pen.l2_H, active=self.active)
