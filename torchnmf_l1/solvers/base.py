"""The one contract every solver of every family implements.

A solver is built from a *problem* (what is fitted: data, loss, constraints; see
:mod:`torchnmf_l1.problem`) and a *state* (the tensors it updates in place: the factors),
plus keyword options checked against its parameter table::

    solver = SolverClass(problem, state, **options)   # options checked here, and only here
    solver.step()            # one outer iteration; never reads the device
    solver.objective()       # 0-dim tensor, or (B,) for a batch of problems; no host sync
    solver.at_check(tol)     # optional: host-side work at a check, and a stopping rule
    solver.set_active_(mask) # a batch: problems that have stopped keep their values
    solver.finish()          # SolverOutput: what the model commits (factors, extra)

:func:`torchnmf_l1.fit.fit_solver` runs the loop and calls ``finish``; models build the
problem and the state, call it, and commit the output; they never import a solver
module (they look solvers up in :mod:`torchnmf_l1.registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..params import Param, check_params
from ..problem import FactorState, NMFProblem

__all__ = ["Solver", "SolverOutput", "NMFSolver"]


@dataclass
class SolverOutput:
    """What a solver hands to the model at the end of a fit.

    Attributes
    ----------
    factors : dict of name -> Tensor (or list of Tensors)
        The fitted tensors, by the name the model stores them under (``"W"``, ``"H"``,
        ``"indices"``, ``"factors"``, ...).
    extra : dict
        Numbers for ``FitResult.extra``; ``relative_error`` is always a fraction.
    """

    factors: dict
    extra: dict = field(default_factory=dict)


class Solver:
    """Base class of every registered solver (see the module docstring for the contract).

    Subclasses set ``options`` (the parameter table: name -> :class:`~torchnmf_l1.params.Param`),
    optionally ``fit_defaults``, ``monotone`` and ``batched``, and implement :meth:`step`,
    :meth:`objective` and :meth:`finish`. :func:`torchnmf_l1.registry.register_solver` sets
    ``name`` and ``family``. ``tests/test_contract.py`` tests every registered solver of
    every family against this contract.

    Parameters
    ----------
    problem : object
        The family's problem (e.g. :class:`~torchnmf_l1.problem.NMFProblem`).
    state : object or None
        The tensors the solver updates in place (e.g. :class:`~torchnmf_l1.problem.FactorState`).
    **options
        Checked against ``options`` by :meth:`check_options`.
    """

    name: ClassVar[str] = "solver"
    family: ClassVar[str] = ""
    options: ClassVar[dict[str, Param]] = {}
    fit_defaults: ClassVar[FitDefaults] = FitDefaults()
    #: the objective never increases from one step to the next (with the default options)
    monotone: ClassVar[bool] = False
    #: accepts a batch of problems (a leading dimension on the data and the state)
    batched: ClassVar[bool] = False

    def __init__(self, problem, state=None, **options):
        self.config = self.check_options(options)
        self.check_problem(problem)
        self.problem = problem
        self.state = state
        self.active: Tensor | None = None

    @classmethod
    def check_options(cls, options: dict) -> dict:
        """The one check of a solver's options: every option, defaults filled in."""
        return check_params(cls.options, options, f"solver {cls.name!r}", validators=cls.validators())

    @classmethod
    def validators(cls) -> tuple:
        """Checks of several options together (callables raising on the complete dict)."""
        return ()

    @classmethod
    def check_problem(cls, problem) -> None:
        """Raise ``ValueError`` if this solver cannot solve ``problem``."""

    @classmethod
    def create(cls, problem, state=None, **options) -> "Solver":
        """Build the solver for ``problem``; a family may wrap it (subsampled separable NMF)."""
        return cls(problem, state, **options)

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def objective(self) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def at_check(self, tol: float):
        """Host-side work at a check; return a per-problem list of "done" flags to replace
        the fit loop's relative-decrease rule, or None to keep it."""
        return None

    def set_active_(self, active) -> None:
        """Problems of a batch that are still iterating (a list of bools or a bool tensor)."""
        device = self._device()
        self.active = torch.as_tensor(active, dtype=torch.bool, device=device)

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def finish(self) -> SolverOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class NMFSolver(Solver):
    """Base of the ``"nmf"`` family: X ~ WH for a loss, one problem or a batch.

    The state is a :class:`~torchnmf_l1.problem.FactorState` whose W ((m, r) or (B, m, r))
    and H ((r, n) or (B, r, n)) the solver updates in place; ``problem.update_W`` /
    ``update_H`` False keeps one fixed. Subclasses set ``losses`` (canonical loss names),
    ``supports_sparse``, ``default_init`` and implement :meth:`step`.
    """

    family = "nmf"
    monotone = True
    batched = True
    losses: ClassVar[frozenset] = frozenset()
    supports_sparse: ClassVar[bool] = True
    #: takes entry weights and missing entries (``problem.weights``)
    supports_weights: ClassVar[bool] = False
    #: fits several factor pairs to one shared X (``problem.shared``); otherwise a model
    #: fits replicates as a batch of copies of X
    takes_replicates: ClassVar[bool] = True
    default_init: ClassVar[str] = "nndsvda"  # the model's init when it is given none

    def __init__(self, problem: NMFProblem, state: FactorState, **options):
        super().__init__(problem, state, **options)
        self.update_W = problem.update_W
        self.update_H = problem.update_H
        expected = problem.factor_shapes(state.W.shape[-1])
        if (tuple(state.W.shape), tuple(state.H.shape)) != expected:
            raise ValueError(f"W and H must have shapes {expected[0]} and {expected[1]}, got {tuple(state.W.shape)} and {tuple(state.H.shape)}")

    @classmethod
    def check_problem(cls, problem: NMFProblem) -> None:
        if problem.loss.name not in cls.losses:
            raise ValueError(
                f"solver {cls.name!r} does not handle loss {problem.loss.name!r}; it handles {sorted(cls.losses)}"
            )
        if problem.weights is not None and not cls.supports_weights:
            from ..registry import available_solvers, get_solver

            able = [name for name in available_solvers("nmf") if getattr(get_solver(name, family="nmf"), "supports_weights", False)]
            raise ValueError(
                f"solver {cls.name!r} does not take missing entries or weights (mask=, weights=, NaN in X); "
                f"solvers that do: {able}"
            )
        if problem.data.sparse and not cls.supports_sparse:
            raise ValueError(f"solver {cls.name!r} does not handle sparse X; pass a dense X or another solver")

    @property
    def W(self) -> Tensor:
        return self.state.W

    @property
    def H(self) -> Tensor:
        return self.state.H

    def _device(self) -> torch.device:
        return self.state.W.device

    def objective(self) -> Tensor:
        """Current objective: 0-dim, or (B,) (no host sync)."""
        return self.problem.objective(self.W, self.H)

    def parallel_work(self) -> float:
        """Flops of the products with X in one iteration (both factors), as ``threads="auto"``
        weighs them: every problem's for one X or a batch of matrices (whose products are
        GEMMs over all problems at once, which split over threads), one problem's for
        replicates of a shared X (the one shared GEMM gains little from a second thread, while
        each per-problem operation of a sweep pays for waking it)."""
        d = self.problem.data
        m, n = self.problem.shape
        entries = d.values.numel() if d.sparse else m * n * (d.batch or 1)
        return 4.0 * entries * self.W.shape[-1]

    def result_extra(self) -> dict:
        """Family numbers reported after the fit: the relative Frobenius error (a fraction)."""
        d = self.problem.data
        if self.problem.weights is not None:
            error = kernels.weighted_relative_error(d.X, self.W, self.H, self.problem.weight_values, d.support)
        else:
            error = kernels.relative_error(d.X, self.W, self.H, d.support)
        return {"relative_error": error.tolist()}

    def finish(self) -> SolverOutput:
        return SolverOutput({"W": self.W.contiguous(), "H": self.H.contiguous()}, self.result_extra())
