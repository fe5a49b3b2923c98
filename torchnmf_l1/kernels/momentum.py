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

__all__ = ["MomentumState", "accelerated_update"]


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
