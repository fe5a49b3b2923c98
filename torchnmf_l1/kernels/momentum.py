r"""Nesterov's accelerated (projected) gradient with restart: the one momentum step of the package.

After a projected gradient step from the extrapolated point y gives the candidate
:math:`x^+` with objective :math:`f^+`, the iterate, the next extrapolated point and the
momentum parameter are

.. math::
    t^+ = \tfrac12\big(1 + \sqrt{1 + 4t^2}\big),\quad
    \beta = \frac{t - 1}{t^+},\quad
    y^+ = x^+ + \beta (x^+ - x),

unless :math:`f^+ > f` (a rise): then the step is rejected, x is kept, the momentum is
reset (:math:`\beta = 0`, :math:`t = 1`) and the next step is a plain projected gradient
step from x, so the objective never increases (O'Donoghue and Candès, 2015). Everything
is decided on the device, per problem (``f`` may hold one objective per problem, e.g.
one per column of a batched NNLS). The same update carries any linear image of the
iterate (``M x``), so that the objective at y needs no extra product.

Used by FGNSR (:mod:`torchnmf_l1.solvers.fgnsr`) and the conv-hull NNLS of SNPA
(:func:`torchnmf_l1.kernels.simplex_nnls`). :func:`extrapolation_update` is the
parameter rule of Ang and Gillis's extrapolation of the alternating NMF scheme (HALS
with extrapolation, :mod:`torchnmf_l1.solvers.hals`).

References
----------
Y. Nesterov, "A method of solving a convex programming problem with convergence rate
O(1/k^2)", Soviet Math. Dokl. 27, 1983.
B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient schemes",
Found. Comput. Math. 15, 2015.
A. M. S. Ang and N. Gillis, "Accelerating nonnegative matrix factorization algorithms
using extrapolation", Neural Computation 31(2), 2019.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "MomentumState",
    "accelerated_update",
    "RestartState",
    "restart_update",
    "bracketing_update",
    "ExtrapolationState",
    "extrapolation_start",
    "extrapolation_update",
]


class MomentumState(NamedTuple):
    """Iterate ``x``, its image ``ax``, the extrapolated point ``y`` and its image ``ay``,
    the momentum parameter ``t`` and the objective ``f`` at x (one per problem)."""

    x: Tensor
    ax: Tensor
    y: Tensor
    ay: Tensor
    t: Tensor
    f: Tensor


def _expand(flag: Tensor, like: Tensor) -> Tensor:
    return flag.reshape(flag.shape + (1,) * (like.dim() - flag.dim()))


def accelerated_update(state: MomentumState, x_next: Tensor, ax_next: Tensor, f_next: Tensor) -> MomentumState:
    """The momentum step with restart from the candidate ``(x_next, ax_next, f_next)``.

    ``f`` (and ``t``) have the leading shape of the problems: 0-dim for one problem, or
    (n,) for n problems stored as the rows of ``x`` (n x ...). No host synchronisation.
    """
    x, ax, _, _, t, f = state
    rise = f_next > f
    t_next = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
    beta = torch.where(rise, torch.zeros_like(t_next), (t - 1) / t_next)
    keep_x, keep_ax = _expand(rise, x), _expand(rise, ax)
    x_new = torch.where(keep_x, x, x_next)
    ax_new = torch.where(keep_ax, ax, ax_next)
    # x_new + beta (x_new - x) in one pass
    y = torch.lerp(x_new, x, -_expand(beta, x))
    ay = torch.lerp(ax_new, ax, -_expand(beta, ax))
    return MomentumState(
        x_new, ax_new, y, ay, torch.where(rise, torch.ones_like(t_next), t_next), torch.where(rise, f, f_next)
    )


class RestartState(NamedTuple):
    """The state of :func:`restart_update`: iterate ``x`` and its image ``ax``, the extrapolated
    point ``y`` and ``ay``, the momentum parameter ``alpha``, the objective ``f`` at x and
    whether the last step restarted (``restarted``, bool); all on the device."""

    x: Tensor
    ax: Tensor
    y: Tensor
    ay: Tensor
    alpha: Tensor
    f: Tensor
    restarted: Tensor


def restart_update(state: RestartState, x_next: Tensor, ax_next: Tensor, f_next: Tensor,
                   alpha0: float = 0.05) -> RestartState:
    r"""Nesterov's constant step scheme II with the restart of Gillis and Luce's FGNSR code.

    The candidate is always taken (a rise of the objective included); with
    :math:`\alpha^{+}` the root of :math:`\alpha^{+2} = (1 - \alpha^{+})\alpha^2` and
    :math:`\beta = \alpha(1 - \alpha) / (\alpha^2 + \alpha^{+})`, the next extrapolated point
    is :math:`y^+ = x^+ + \beta (x^+ - x)`, unless the objective rose and the previous step
    did not restart: then the momentum is reset (:math:`y^+ = x^+`, :math:`\alpha = \alpha_0`).
    Unlike :func:`accelerated_update` the objective may rise at a restart; the step never
    reads the device.

    References
    ----------
    Y. Nesterov, *Introductory lectures on convex optimization*, Kluwer, 2004, p. 90.
    N. Gillis and R. Luce, IEEE Trans. Image Processing 27(1), 2018 (and its code).
    """
    x, ax, _, _, alpha, f, restarted = state
    alpha_next = 0.5 * (torch.sqrt(alpha**4 + 4 * alpha**2) - alpha**2)
    beta = alpha * (1 - alpha) / (alpha**2 + alpha_next)
    restart = (f_next > f) & ~restarted
    beta = torch.where(restart, torch.zeros_like(beta), beta)
    y = torch.lerp(x_next, x, -beta)  # x_next + beta (x_next - x) in one pass
    ay = torch.lerp(ax_next, ax, -beta)
    alpha = torch.where(restart, torch.full_like(alpha_next, alpha0), alpha_next)
    return RestartState(x_next, ax_next, y, ay, alpha, f_next, restart)


def bracketing_update(value: Tensor, measured: Tensor, target: Tensor | float, step: Tensor, direction: Tensor,
                      apply: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Move ``value`` by the factor :math:`1 \mp \sigma` towards ``measured == target``, halving
    :math:`\sigma` (``step``) each time the direction flips (FGNSR's rule for mu, with
    ``measured`` the trace of X: mu shrinks while the trace is under its target).

    Only where ``apply`` holds (0-dim bool, e.g. "the momentum just restarted"); returns the
    new ``(value, step, direction)``; no host read.
    """
    below = measured < target
    flips = torch.where(below, direction < 0, direction > 0)
    step = torch.where(apply & flips, step / 2, step)
    moved = torch.where(below, (1 - step) * value, (1 + step) * value)
    value = torch.where(apply, moved, value)
    direction = torch.where(apply, torch.where(below, torch.ones_like(direction), -torch.ones_like(direction)),
                            direction)
    return value, step, direction


class ExtrapolationState(NamedTuple):
    """The state of :func:`extrapolation_update`, one entry per problem (0-dim or (B,)):
    the extrapolation weight ``beta``, its value one step before (``beta_previous``), its
    upper bound ``beta_max`` and the objective of the last step (``objective``)."""

    beta: Tensor
    beta_previous: Tensor
    beta_max: Tensor
    objective: Tensor


def extrapolation_start(objective: Tensor, beta0: float) -> ExtrapolationState:
    """The state before the first step: ``beta = beta0``, ``beta_max = 1`` (Ang and Gillis)."""
    beta = torch.full_like(objective, beta0)
    return ExtrapolationState(beta, beta, torch.ones_like(objective), objective)


def extrapolation_update(
    state: ExtrapolationState, objective: Tensor, *, eta: float, gamma: float, gamma_bar: float
) -> tuple[ExtrapolationState, Tensor]:
    r"""Ang and Gillis's rule for the extrapolation weight after a step with ``objective``.

    If the objective rose above the last step's, the step is to be restarted from the
    last accepted iterate: :math:`\bar\beta \leftarrow \beta_{\text{previous}}` and
    :math:`\beta \leftarrow \beta / \eta`. Otherwise it is accepted:
    :math:`\beta \leftarrow \min(\bar\beta, \gamma \beta)` and
    :math:`\bar\beta \leftarrow \min(1, \bar\gamma \bar\beta)`. The comparison is with the
    last step's objective, accepted or not, as in the authors' code (after a restart the next
    step is compared with the rejected value). Returns the new state and the per-problem
    ``rise`` flags (restart there); no host read.
    """
    rise = objective > state.objective
    beta_max = torch.where(rise, state.beta_previous, (state.beta_max * gamma_bar).clamp_max(1.0))
    beta = torch.where(rise, state.beta / eta, torch.minimum(state.beta_max, state.beta * gamma))
    return ExtrapolationState(beta, state.beta, beta_max, objective), rise
