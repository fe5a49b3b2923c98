r"""The objective of an NMF problem: a loss name resolved once, penalties, and its value.

.. math::
    \min_{W \ge 0,\, H \ge 0}\; D(X \mid WH)
    + \lambda^{(1)}_W \|W\|_1 + \tfrac12 \lambda^{(2)}_W \|W\|_F^2
    + \lambda^{(1)}_H \|H\|_1 + \tfrac12 \lambda^{(2)}_H \|H\|_F^2

with :math:`D` one of the losses of :mod:`torchnmf_l1.kernels.losses`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from . import kernels
from .data import Data

__all__ = ["Loss", "resolve_loss", "Penalties", "NMFProblem", "LOSS_NAMES"]


@dataclass(frozen=True)
class Loss:
    """A resolved loss: canonical ``name``, its ``beta`` (beta-divergences) and ``zero_weight`` (wl1)."""

    name: str
    beta: float | None = None
    zero_weight: float = 1.0

    def __call__(self, data: Data, W: Tensor, H: Tensor) -> Tensor:
        return _LOSS_FUNCTIONS[self.name](self, data, W, H)

    @property
    def needs_positive_data(self) -> bool:
        """Beta-divergences with beta <= 0 are infinite where X has zeros."""
        return self.beta is not None and self.beta <= 0


_LOSS_FUNCTIONS: dict[str, Callable[[Loss, Data, Tensor, Tensor], Tensor]] = {
    "frobenius": lambda loss, d, W, H: kernels.frobenius_loss(d.X, W, H, d.support),
    "kl": lambda loss, d, W, H: kernels.kl_divergence(d.X, W, H, d.support),
    "is": lambda loss, d, W, H: kernels.is_divergence(d.X, W, H, d.support),
    "beta": lambda loss, d, W, H: kernels.beta_divergence(d.X, W, H, loss.beta, d.support),
    "l1": lambda loss, d, W, H: kernels.l1_loss(d.X, W, H, d.support),
    "wl1": lambda loss, d, W, H: kernels.weighted_l1_loss(d.X, W, H, loss.zero_weight, d.support),
}

LOSS_NAMES = tuple(_LOSS_FUNCTIONS)

_BETA_OF = {"frobenius": 2.0, "kl": 1.0, "is": 0.0}
_NAME_OF_BETA = {b: n for n, b in _BETA_OF.items()}


def _finite_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def resolve_loss(loss: str = "frobenius", *, beta=None, zero_weight=None) -> Loss:
    """Resolve a loss name and its parameters to a canonical :class:`Loss`.

    ``"beta"`` with ``beta`` in {2, 1, 0} becomes ``"frobenius"``, ``"kl"``, ``"is"``;
    ``"wl1"`` with ``zero_weight=1`` is ``"l1"``.

    Raises
    ------
    ValueError
        Unknown name, ``beta`` given with a loss that has a fixed beta, a missing or
        non-finite beta, a negative or non-finite ``zero_weight``.
    """
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a string, one of {LOSS_NAMES}, got {loss!r}")
    name = loss.lower()
    if name in ("fro", "frobenius", "euclidean", "l2"):
        name = "frobenius"
    elif name in ("kullback-leibler", "kl"):
        name = "kl"
    elif name in ("itakura-saito", "is"):
        name = "is"
    if name not in _LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSS_NAMES}")
    if name in ("l1", "wl1"):
        if beta is not None:
            raise ValueError(f"beta is only used by beta-divergence losses, got beta={beta!r} with loss {loss!r}")
        if zero_weight is None:
            zero_weight = 1.0
        lam = _finite_number(zero_weight, "zero_weight")
        if lam < 0:
            raise ValueError(f"zero_weight must be >= 0, got {lam!r}")
        return Loss("l1" if lam == 1.0 else "wl1", None, lam)
    if zero_weight is not None:
        raise ValueError(f"zero_weight is only used by the 'wl1' loss, got zero_weight={zero_weight!r} with loss {loss!r}")
    if name == "beta":
        if beta is None:
            raise ValueError("loss 'beta' needs beta=, e.g. beta=1.5")
        b = _finite_number(beta, "beta")
        return Loss(_NAME_OF_BETA.get(b, "beta"), b)
    if beta is not None and _finite_number(beta, "beta") != _BETA_OF[name]:
        raise ValueError(f"loss {loss!r} has beta={_BETA_OF[name]:g}, got beta={beta!r}; use loss='beta'")
    return Loss(name, _BETA_OF[name])


@dataclass(frozen=True)
class Penalties:
    """Element-wise L1 and squared-L2 penalties on W and H (all >= 0)."""

    l1_W: float = 0.0
    l2_W: float = 0.0
    l1_H: float = 0.0
    l2_H: float = 0.0

    def __post_init__(self):
        for field in ("l1_W", "l2_W", "l1_H", "l2_H"):
            value = _finite_number(getattr(self, field), f"{field.replace('_', '_reg_', 1)}")
            if value < 0:
                raise ValueError(f"{field.replace('_', '_reg_', 1)} must be >= 0, got {value!r}")
            object.__setattr__(self, field, value)

    @property
    def active(self) -> bool:
        return any((self.l1_W, self.l2_W, self.l1_H, self.l2_H))

    def value(self, W: Tensor, H: Tensor) -> Tensor:
        total = W.new_zeros(())
        if self.l1_W:
            total = total + self.l1_W * W.sum()
        if self.l2_W:
            total = total + 0.5 * self.l2_W * (W * W).sum()
        if self.l1_H:
            total = total + self.l1_H * H.sum()
        if self.l2_H:
            total = total + 0.5 * self.l2_H * (H * H).sum()
        return total

    @property
    def transposed(self) -> "Penalties":
        """The penalties of the transposed problem X^T ~ H^T W^T."""
        return Penalties(self.l1_H, self.l2_H, self.l1_W, self.l2_W)


@dataclass(frozen=True, eq=False)
class NMFProblem:
    """Data, loss and penalties: everything a solver needs besides the factors."""

    data: Data
    loss: Loss
    penalties: Penalties = Penalties()

    def objective(self, W: Tensor, H: Tensor) -> Tensor:
        """Loss plus penalties at (W, H), a 0-dim tensor (no host sync)."""
        value = self.loss(self.data, W, H)
        if self.penalties.active:
            value = value + self.penalties.value(W, H)
        return value
