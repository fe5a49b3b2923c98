"""The interface every NMF solver implements.

A solver sees a problem (data, loss, penalties) and two factor tensors that it
updates in place; it never sees a model. The outer loop lives in
:func:`torchnmf_l1.fit.run_fit`.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from ..problem import NMFProblem

__all__ = ["Solver"]


class Solver:
    """Base class of the registered NMF solvers.

    Subclasses set ``losses`` (canonical loss names they minimise), ``options``
    (name -> default of their keyword options) and implement :meth:`step`.

    Parameters
    ----------
    problem : NMFProblem
    W : Tensor, shape (m, r)
    H : Tensor, shape (r, n)
        Updated in place by :meth:`step`.
    update_W, update_H : bool
        False keeps that factor fixed.
    **options
        Solver-specific options; unknown names raise ``TypeError``.
    """

    name: ClassVar[str] = "solver"
    losses: ClassVar[frozenset] = frozenset()
    options: ClassVar[dict] = {}
    supports_sparse: ClassVar[bool] = True
    default_init: ClassVar[str] = "nndsvda"  # the model's init when it is given none

    def __init__(self, problem: NMFProblem, W: Tensor, H: Tensor, *, update_W: bool = True, update_H: bool = True, **options):
        self.check_problem(problem)
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(
                f"solver {self.name!r} got unexpected option(s) {unknown}; its options are {sorted(self.options)}"
            )
        self.problem = problem
        self.W = W
        self.H = H
        self.update_W = update_W
        self.update_H = update_H
        self.config = {**self.options, **options}

    @classmethod
    def check_problem(cls, problem: NMFProblem) -> None:
        """Raise ``ValueError`` if this solver cannot minimise ``problem``'s loss or data."""
        if problem.loss.name not in cls.losses:
            raise ValueError(
                f"solver {cls.name!r} does not handle loss {problem.loss.name!r}; it handles {sorted(cls.losses)}"
            )
        if problem.data.sparse and not cls.supports_sparse:
            raise ValueError(f"solver {cls.name!r} does not handle sparse X; pass a dense X or another solver")

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def objective(self) -> Tensor:
        """Current objective (0-dim tensor; no host sync)."""
        return self.problem.objective(self.W, self.H)
