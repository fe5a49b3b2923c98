"""The one outer fit loop shared by every solver.

A solver exposes ``step()`` (one outer iteration, updating its factors in place)
and ``objective()`` (a 0-dim tensor). :func:`run_fit` calls ``step`` up to
``max_iter`` times and reads the objective back to the host only every
``check_every`` iterations, where it tests convergence, the time limit and the
callbacks.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from .exceptions import ConvergenceWarning

__all__ = ["FitResult", "IterationInfo", "run_fit"]

_NEGLIGIBLE = 1e-12


@dataclass
class IterationInfo:
    """What a callback sees at each check: return True from the callback to stop."""

    iteration: int
    objective: float
    elapsed: float
    solver: object


@dataclass
class FitResult:
    """Outcome of a fit.

    Attributes
    ----------
    n_iter : int
        Outer iterations performed.
    converged : bool
        True when the relative change of the objective between two checks fell below ``tol``.
    objective : list of float
        Objective at iteration 0 and at every check.
    iterations : list of int
        Iteration number of each entry of ``objective``.
    times : list of float
        Seconds since the start of the loop at each entry of ``objective``.
    message : str
        Why the loop stopped.
    solver : str
        Registered name of the solver.
    """

    n_iter: int = 0
    converged: bool = False
    objective: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    times: list = field(default_factory=list)
    message: str = ""
    solver: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def final_objective(self) -> float:
        return self.objective[-1] if self.objective else math.nan

    def __repr__(self) -> str:
        return (
            f"FitResult(solver={self.solver!r}, n_iter={self.n_iter}, converged={self.converged}, "
            f"objective={self.final_objective:.6g}, message={self.message!r})"
        )


def _check_positive_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def run_fit(
    solver,
    *,
    max_iter: int = 200,
    tol: float = 1e-4,
    time_limit: float | None = None,
    check_every: int = 10,
    callbacks: Iterable[Callable[[IterationInfo], bool | None]] = (),
    progress: bool = False,
    warn: bool = True,
) -> FitResult:
    r"""Iterate ``solver.step()`` until convergence, ``max_iter`` or ``time_limit``.

    Convergence: at a check after iteration k (every ``check_every`` iterations),
    with :math:`f_p` the objective at the previous check,
    :math:`|f_p - f_k| / \max(|f_p|, \text{tiny}) < \text{tol}`, or
    :math:`|f_p - f_k| \le 10^{-12} f_0` (an exact fit at round-off level). An increase
    larger than ``tol`` (non-monotone solvers) is not taken as convergence.

    Parameters
    ----------
    max_iter : int
        Maximum number of outer iterations (>= 0).
    tol : float
        Tolerance on the relative decrease of the objective between checks; 0 runs
        all ``max_iter`` iterations.
    time_limit : float, optional
        Wall-clock budget in seconds, tested at each check.
    check_every : int
        Iterations between objective evaluations (each costs one host sync).
    callbacks : iterable of callables
        Called with an :class:`IterationInfo` at each check; returning True stops.
    progress : bool
        Show a tqdm progress bar with the current objective.
    warn : bool
        Emit a :class:`~torchnmf_l1.ConvergenceWarning` when ``max_iter`` is reached.
    """
    _check_positive_int(max_iter, "max_iter", 0)
    _check_positive_int(check_every, "check_every", 1)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0 or not math.isfinite(tol):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if time_limit is not None and (not isinstance(time_limit, (int, float)) or not time_limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    callbacks = list(callbacks)
    result = FitResult(solver=getattr(solver, "name", type(solver).__name__))
    start = time.perf_counter()
    previous = float(solver.objective())
    result.objective.append(previous)
    result.iterations.append(0)
    result.times.append(0.0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=result.solver, leave=False)
    message = f"reached max_iter={max_iter}"
    try:
        with torch.no_grad():
            for it in range(1, max_iter + 1):
                solver.step()
                result.n_iter = it
                if it % check_every and it != max_iter:
                    continue
                current = float(solver.objective())
                elapsed = time.perf_counter() - start
                result.objective.append(current)
                result.iterations.append(it)
                result.times.append(elapsed)
                if bar is not None:
                    bar.update(it - bar.n)
                    bar.set_postfix(objective=f"{current:.6g}")
                if not math.isfinite(current):
                    message = f"objective became {current} at iteration {it}"
                    break
                previous_raw = previous
                decrease = (previous - current) / max(abs(previous), torch.finfo(torch.float64).tiny)
                previous = current
                # |change| < tol: stagnation. A larger increase (a non-monotone solver such as an
                # accelerated gradient with restarts) is not convergence: keep iterating.
                # A change negligible against the initial objective (an exact fit at round-off
                # level) also counts as stagnation.
                negligible = abs(previous_raw - current) <= _NEGLIGIBLE * abs(result.objective[0])
                if tol > 0 and (abs(decrease) < tol or negligible):
                    result.converged = True
                    message = f"relative decrease {decrease:.3g} < tol={tol:g} at iteration {it}"
                    break
                if any(cb(IterationInfo(it, current, elapsed, solver)) for cb in callbacks):
                    message = f"stopped by a callback at iteration {it}"
                    break
                if time_limit is not None and elapsed >= time_limit:
                    message = f"reached time_limit={time_limit:g}s at iteration {it}"
                    break
    finally:
        if bar is not None:
            bar.close()
    result.message = message
    extra = getattr(solver, "result_extra", None)
    if callable(extra):
        result.extra.update(extra())
    if warn and not result.converged and message.startswith("reached max_iter") and tol > 0 and max_iter > 0:
        warnings.warn(
            f"{result.solver}: {message} without meeting tol={tol:g}; increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=3,
        )
    return result
