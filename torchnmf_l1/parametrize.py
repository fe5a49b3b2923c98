r"""Nonnegativity for autograd training: parametrizations, projection after each step, a training loop.

Two ways to keep a factor nonnegative while a ``torch.optim`` optimiser trains it:

* a **reparametrisation** ``W = f(V)`` with V unconstrained, registered by
  :func:`torch.nn.utils.parametrize.register_parametrization` (or :func:`positive`):
  :class:`Softplus` (:math:`\log(1 + e^{\beta V}) / \beta`), :class:`Square`
  (:math:`V^2`), :class:`Exp` (:math:`e^V`). Each is a small module with
  ``forward``, ``right_inverse`` (so that ``model.W = value`` and the registration
  itself start from the current value) and ``in_manifold``, and raises
  :class:`NotNonnegativeError` (a ``ValueError``) for a negative target;
* **projection** after each optimiser step, :math:`W \leftarrow \max(W, 0)`, by
  :func:`project_` or the :class:`ProjectedOptimizer` wrapper.

The fixed-point solvers (MU, HALS, ...) never see a parametrization: they update the
raw tensors in place. Fit a model after autograd training either as it is (it was
projected) or after :func:`torch.nn.utils.parametrize.remove_parametrizations` with
``leave_parametrized=True`` (the constrained value becomes the raw parameter).

References
----------
M. Lezcano-Casado, "Trivializations for gradient-based optimization on manifolds",
NeurIPS 2019 (geotorch).
C.-J. Lin, "Projected gradient methods for nonnegative matrix factorization",
Neural Computation 19(10), 2007.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize as _parametrize

from .data import prepare_data
from .problem import NMFProblem, Penalties, resolve_loss

__all__ = [
    "NotNonnegativeError",
    "Softplus",
    "Square",
    "Exp",
    "CONSTRAINTS",
    "positive",
    "project_",
    "ProjectedOptimizer",
    "TrainResult",
    "train_autograd",
]


class NotNonnegativeError(ValueError):
    """A value given to a nonnegativity parametrization has negative (or non-finite) entries."""

    def __init__(self, constraint: str, value: Tensor):
        finite = bool(torch.isfinite(value).all())
        low = float(value.min()) if value.numel() else float("nan")
        what = f"its minimum is {low:.3g}" if finite else "it has non-finite entries"
        super().__init__(f"{constraint} parametrization needs a nonnegative finite tensor, but {what}")


class _Nonnegative(nn.Module):
    """Base of the reparametrisations: W = forward(V) >= 0 for every real V."""

    #: Whether ``forward`` reaches 0 exactly (Square does; Softplus and Exp only in the limit).
    reaches_zero = False

    def in_manifold(self, Y: Tensor) -> bool:
        """True when Y is finite and nonnegative (a host synchronisation)."""
        return bool(torch.isfinite(Y).all()) and bool((Y >= 0).all())

    def _check(self, Y: Tensor) -> None:
        if not self.in_manifold(Y):
            raise NotNonnegativeError(type(self).__name__, Y)

    def extra_repr(self) -> str:
        return ""


class Softplus(_Nonnegative):
    r""":math:`W = \operatorname{softplus}_\beta(V) = \tfrac1\beta \log(1 + e^{\beta V})`.

    ``right_inverse`` is :math:`V = W + \tfrac1\beta\log(-\operatorname{expm1}(-\beta W))`;
    exact zeros are mapped to the dtype's smallest normal number first (so W = 0
    is reached only approximately, as for every smooth positive map).
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
            raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
        self.beta = float(beta)

    def forward(self, V: Tensor) -> Tensor:
        return nn.functional.softplus(V, beta=self.beta)

    def right_inverse(self, W: Tensor) -> Tensor:
        self._check(W)
        Wb = (self.beta * W).clamp_min(torch.finfo(W.dtype).tiny)
        return (Wb + torch.log(-torch.expm1(-Wb))) / self.beta

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}"


class Square(_Nonnegative):
    r""":math:`W = V \odot V`; ``right_inverse`` is :math:`\sqrt W`.

    The gradient vanishes at V = 0: an entry that reaches 0 stays there.
    """

    reaches_zero = True

    def forward(self, V: Tensor) -> Tensor:
        return V * V

    def right_inverse(self, W: Tensor) -> Tensor:
        self._check(W)
        return torch.sqrt(W)


class Exp(_Nonnegative):
    r""":math:`W = e^V`; ``right_inverse`` is :math:`\log W` (zeros mapped to the dtype's tiny first)."""

    def forward(self, V: Tensor) -> Tensor:
        return torch.exp(V)

    def right_inverse(self, W: Tensor) -> Tensor:
        self._check(W)
        return torch.log(W.clamp_min(torch.finfo(W.dtype).tiny))


CONSTRAINTS = {"softplus": Softplus, "square": Square, "exp": Exp}


def positive(module: nn.Module, tensor_name: str = "W", constraint: str | nn.Module = "softplus") -> nn.Module:
    """Register a nonnegativity parametrization on ``module.<tensor_name>`` (geotorch style).

    Parameters
    ----------
    module : nn.Module
        E.g. an :class:`~torchnmf_l1.NMF` (``"W"``, ``"H"``) or an :class:`~torchnmf_l1.NNLSLayer`.
    tensor_name : str
    constraint : {"softplus", "square", "exp"} or a parametrization module

    Returns
    -------
    nn.Module
        ``module``, now with ``module.<tensor_name>`` computed from an unconstrained
        ``module.parametrizations.<tensor_name>.original``.

    Raises
    ------
    NotNonnegativeError
        The current value has negative entries (project it first).
    ValueError
        Unknown constraint name or no such tensor.
    """
    if isinstance(constraint, str):
        if constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {tuple(CONSTRAINTS)}, got {constraint!r}")
        constraint = CONSTRAINTS[constraint]()
    if not isinstance(getattr(module, tensor_name, None), Tensor):
        raise ValueError(f"{type(module).__name__} has no tensor named {tensor_name!r}")
    _parametrize.register_parametrization(module, tensor_name, constraint)
    return module


def _constrained_parameters(module: nn.Module, names: Iterable[str]) -> list[nn.Parameter]:
    names = set(names)
    found = []
    for full_name, param in module.named_parameters():
        parts = full_name.split(".")
        if parts[-1] in names and "parametrizations" not in parts:
            found.append(param)
    return found


def project_(module: nn.Module, names: Iterable[str] = ("W", "H")) -> nn.Module:
    """Clamp at 0, in place, every raw parameter of ``module`` (recursively) named in ``names``.

    Parametrized tensors are skipped (their raw tensor is unconstrained by design).
    Call it after each optimiser step (or use :class:`ProjectedOptimizer`).
    """
    with torch.no_grad():
        for param in _constrained_parameters(module, names):
            param.clamp_(min=0.0)
    return module


class ProjectedOptimizer:
    """Wrap a ``torch.optim`` optimiser so that each ``step()`` is followed by a projection onto ``params >= 0``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    params : iterable of Tensor
        The tensors to keep nonnegative (e.g. ``[model.W, model.H]``).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, params: Iterable[Tensor]):
        self.optimizer = optimizer
        self.params = list(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        with torch.no_grad():
            for p in self.params:
                p.clamp_(min=0.0)
        return loss

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)


@dataclass
class TrainResult:
    """Outcome of :func:`train_autograd`: the loss after each step and a message."""

    steps: int
    losses: list[float] = field(default_factory=list)
    message: str = ""

    @property
    def objective(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def train_autograd(
    model: nn.Module,
    X,
    *,
    loss: str | Callable[[Tensor, Tensor, Tensor], Tensor] = "frobenius",
    beta: float | None = None,
    zero_weight: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-2,
    steps: int = 100,
    project: bool = True,
    record_every: int = 1,
) -> TrainResult:
    r"""Train a factor model's W and H by autograd on a loss of X ~ W H.

    .. math:: \min_{W, H \ge 0} D(X \mid WH) + \text{penalties of the model}

    Nonnegativity comes from the model's parametrizations (:func:`positive`) and,
    for the factors that have none, from a projection after each step (``project``).

    Parameters
    ----------
    model : nn.Module
        Any module with tensors ``W`` (m x r) and ``H`` (r x n), e.g. a
        :class:`~torchnmf_l1.NMF` created with ``shape=`` or fitted; its ``penalties``
        are added when it has them and ``loss`` is a name.
    X : array-like, shape (m, n)
        Nonnegative data, validated by :func:`torchnmf_l1.data.prepare_data`
        (sparse stays sparse).
    loss : str or callable
        A name of :func:`torchnmf_l1.problem.resolve_loss` (``"frobenius"``,
        ``"kl"``, ``"is"``, ``"beta"``, ``"l1"``, ``"wl1"``) evaluated with the
        kernel losses, or a callable ``loss(X, W, H) -> 0-dim tensor``.
    beta, zero_weight : float, optional
        Parameters of the ``"beta"`` and ``"wl1"`` losses.
    optimizer : torch.optim.Optimizer, optional
        Over the model's parameters; ``Adam(lr=lr)`` by default.
    steps : int
        Number of optimiser steps.
    project : bool
        Clamp the non-parametrized W and H at 0 after each step.
    record_every : int
        Record the loss (a host synchronisation) every this many steps and at the end.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        Bad X (negative, not 2-D, ...), shapes of W, H that do not match X, X on
        another device than W, non-positive ``steps``, a loss that became non-finite
        (the factors then keep the values of the last finite step).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    W, H = getattr(model, "W", None), getattr(model, "H", None)
    if not isinstance(W, Tensor) or not isinstance(H, Tensor):
        raise TypeError(f"model must have tensors W and H, got {type(model).__name__}")
    if isinstance(X, Tensor) and X.device != W.device:
        raise ValueError(f"X is on {X.device} but the model is on {W.device}")
    if callable(loss) and not isinstance(loss, str):
        resolved = None
        allow_zeros = True
    else:
        resolved = resolve_loss(loss, beta=beta, zero_weight=zero_weight)
        allow_zeros = not resolved.needs_positive_data
    data = prepare_data(X, device=W.device, dtype=W.dtype, allow_zeros=allow_zeros)
    m, n = data.shape
    if W.dim() != 2 or H.dim() != 2 or W.shape[0] != m or H.shape[1] != n or W.shape[1] != H.shape[0]:
        raise ValueError(
            f"W {tuple(W.shape)} and H {tuple(H.shape)} do not factor X of shape {(m, n)}; "
            "create the model with shape=(m, n) or fit it first"
        )
    if resolved is not None:
        problem = NMFProblem(data, resolved, getattr(model, "penalties", Penalties()))

        def objective():
            return problem.objective(model.W, model.H)
    else:
        def objective():
            return loss(data.X, model.W, model.H)

    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    raw = _constrained_parameters(model, ("W", "H")) if project else []
    result = TrainResult(steps=0)
    backup = [p.detach().clone() for p in model.parameters()]
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        value = objective()
        value.backward()
        optimizer.step()
        with torch.no_grad():
            for p in raw:
                p.clamp_(min=0.0)
        if step % record_every == 0 or step == steps:
            current = float(value.detach())
            if not math.isfinite(current):
                with torch.no_grad():
                    for p, b in zip(model.parameters(), backup):
                        p.copy_(b)
                raise ValueError(f"the loss became {current} at step {step}; the factors keep the last finite values")
            result.losses.append(current)
            backup = [p.detach().clone() for p in model.parameters()]
        result.steps = step
    with torch.no_grad():
        result.losses.append(float(objective()))
    result.message = f"{steps} {type(optimizer).__name__} steps"
    return result
