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
(:func:`torchnmf_l1.kernels.simplex_nnls`).

References
----------
Y. Nesterov, "A method of solving a convex programming problem with convergence rate
O(1/k^2)", Soviet Math. Dokl. 27, 1983.
B. O'Donoghue and E. Candès, "Adaptive restart for accelerated gradient schemes",
Found. Comput. Math. 15, 2015.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["MomentumState", "accelerated_update", "RestartState", "restart_update", "bracketing_update"]


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
