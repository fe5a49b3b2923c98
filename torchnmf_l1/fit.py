"""The one outer fit loop shared by every solver of every family.

A solver (:class:`torchnmf_l1.solvers.Solver`) exposes ``step()`` (one outer iteration,
which never reads the device) and ``objective()`` (a 0-dim tensor, or one value per
problem of a batch). :func:`run_fit` calls ``step`` up to ``max_iter`` times and reads
the objective back to the host only every ``check_every`` iterations, where it tests
convergence per problem, the time limit and the callbacks. :func:`fit_solver` is the path
every model takes: the loop, then the solver's ``finish()``.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterable

import torch

from .exceptions import convergence_warning, warn_user

__all__ = ["FitDefaults", "FitOptions", "FitResult", "IterationInfo", "fit_solver", "run_fit"]

_NEGLIGIBLE = 1e-12
SMALL_WORK = 1e7  # flops per iteration under which threads="auto" runs the fit on one thread


@dataclass(frozen=True)
class FitDefaults:
    """A solver's own defaults for the fit loop (its class attribute ``fit_defaults``)."""

    max_iter: int = 200
    tol: float = 1e-4
    check_every: int = 10


@dataclass(frozen=True)
class FitOptions:
    """The options of the fit loop, taken by every model's ``fit(..., **fit_options)``.

    Attributes
    ----------
    max_iter : int, optional
        Maximum number of outer iterations (>= 0); default: the solver's.
    tol : float, optional
        Tolerance on the relative decrease of the objective between checks (>= 0); 0 runs
        all ``max_iter`` iterations; default: the solver's. An increase of the objective
        beyond round-off is never taken for convergence.
    time_limit : float, optional
        Wall-clock budget in seconds, tested at each check.
    check_every : int, optional
        Iterations between objective evaluations (each costs one host read); default: the solver's.
    callbacks : iterable of callables
        Called with an :class:`IterationInfo` at each check; returning True stops.
    progress : bool
        Show a tqdm progress bar with the current objective.
    warn : bool
        Emit a :class:`~torchnmf_l1.ConvergenceWarning` when ``max_iter`` stops a fit with ``tol > 0``.
    compile : bool or str
        Run ``torch.compile(solver.step, fullgraph=True)`` (True: the default backend; a
        string names the backend). The first step then includes the compilation.
    threads : int, "auto" or None
        torch's intra-op threads during the fit (restored after it). ``"auto"``: one thread
        when the solver's ``parallel_work()`` is under ``SMALL_WORK`` flops, where
        waking a thread pool for every small product costs more than the product (with
        ``OMP_WAIT_POLICY=PASSIVE`` a 200 x 100 x 5 GEMM takes 90 us on 2 threads against 7 us
        on one); replicates of one X count one problem's work (100 extrapolated replicates of
        200 x 100 at r = 5 run 25 % faster on one thread; a batch of 100 copies of X, whose
        products are batched GEMMs, 25 % slower). Otherwise, and for None, the process's
        setting is left as it is.
    """

    max_iter: int | None = None
    tol: float | None = None
    time_limit: float | None = None
    check_every: int | None = None
    callbacks: tuple = ()
    progress: bool = False
    warn: bool = True
    compile: bool | str = False
    threads: int | str | None = "auto"

    def __post_init__(self):
        if self.max_iter is not None:
            _check_int(self.max_iter, "max_iter", 0)
        if self.check_every is not None:
            _check_int(self.check_every, "check_every", 1)
        if self.tol is not None and (
            isinstance(self.tol, bool) or not isinstance(self.tol, (int, float)) or not math.isfinite(self.tol) or self.tol < 0
        ):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")
        if self.time_limit is not None and (
            isinstance(self.time_limit, bool) or not isinstance(self.time_limit, (int, float)) or not self.time_limit > 0
        ):
            raise ValueError(f"time_limit must be a positive number of seconds, got {self.time_limit!r}")
        if callable(self.callbacks):
            raise TypeError("callbacks must be an iterable of callables, got a single callable; wrap it in a list")
        object.__setattr__(self, "callbacks", tuple(self.callbacks))
        for cb in self.callbacks:
            if not callable(cb):
                raise TypeError(f"every callback must be callable, got {cb!r}")
        if not isinstance(self.compile, (bool, str)):
            raise TypeError(f"compile must be a bool or a backend name, got {self.compile!r}")
        if not (self.threads is None or self.threads == "auto" or (
                isinstance(self.threads, int) and not isinstance(self.threads, bool) and self.threads >= 1)):
            raise ValueError(f"threads must be an integer >= 1, 'auto' or None, got {self.threads!r}")

    @classmethod
    def from_kwargs(cls, kwargs: dict, owner: str = "fit") -> "FitOptions":
        """Build from keyword arguments; unknown names raise ``TypeError`` naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"{owner}() got unexpected keyword argument(s) {unknown}; the fit options are {sorted(names)}")
        return cls(**kwargs)

    def resolved(self, defaults: FitDefaults) -> "FitOptions":
        """A copy with the unset max_iter, tol and check_every taken from ``defaults``."""
        return replace(
            self,
            max_iter=defaults.max_iter if self.max_iter is None else self.max_iter,
            tol=defaults.tol if self.tol is None else self.tol,
            check_every=defaults.check_every if self.check_every is None else self.check_every,
        )


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass
class IterationInfo:
    """What a callback sees at each check: return True from the callback to stop.

    ``objective`` is a float, or a list of floats (one per problem of a batch).
    """

    iteration: int
    objective: float | list
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
        True when every problem met its stopping rule (for the default rule: the relative
        decrease of the objective between two checks fell below ``tol``).
    objective : list
        Objective at iteration 0 and at every check: floats, or lists of floats (one per
        problem) for a batch.
    iterations : list of int
        Iteration number of each entry of ``objective``.
    times : list of float
        Seconds since the start of the loop at each entry of ``objective``.
    message : str
        Why the loop stopped.
    solver : str
        Registered name of the solver.
    extra : dict
        What the solver's ``finish()`` reports (always ``relative_error`` as a fraction
        where the family has one).
    n_iter_per_problem, converged_per_problem : list, optional
        For a batch: the iteration at which each problem stopped, and whether it converged.
    """

    n_iter: int = 0
    converged: bool = False
    objective: list = field(default_factory=list)
    iterations: list = field(default_factory=list)
    times: list = field(default_factory=list)
    message: str = ""
    solver: str = ""
    extra: dict = field(default_factory=dict)
    n_iter_per_problem: list | None = None
    converged_per_problem: list | None = None

    @property
    def final_objective(self):
        return self.objective[-1] if self.objective else math.nan

    def __repr__(self) -> str:
        final = self.final_objective
        shown = f"{final:.6g}" if isinstance(final, float) else f"[{', '.join(f'{v:.4g}' for v in final)}]"
        return (
            f"FitResult(solver={self.solver!r}, n_iter={self.n_iter}, converged={self.converged}, "
            f"objective={shown}, message={self.message!r})"
        )


def _read(objective: torch.Tensor) -> tuple[list[float], bool, float]:
    """The objective on the host (one read): values, whether batched, the dtype's round-off."""
    t = objective.detach()
    eps = torch.finfo(t.dtype).eps if t.is_floating_point() else 0.0
    values = t.double().cpu().reshape(-1).tolist()
    return values, t.dim() >= 1, eps


def _decision(previous: float, current: float, reference: float, tol: float, roundoff: float) -> tuple[bool, str]:
    """(converged, why) of the default rule; ``reference`` is the problem's first finite objective."""
    if not math.isfinite(previous) or tol <= 0:  # e.g. an online surrogate before its first minibatch
        return False, ""
    decrease = (previous - current) / max(abs(previous), torch.finfo(torch.float64).tiny)
    # an increase beyond round-off (a non-monotone solver) is never convergence
    if -64 * roundoff <= decrease < tol:
        return True, f"relative decrease {decrease:.3g} < tol={tol:g}"
    if abs(previous - current) <= _NEGLIGIBLE * abs(reference):
        return True, f"change {abs(previous - current):.3g} negligible against the first objective {reference:.6g}"
    return False, ""


def run_fit(
    solver,
    *,
    max_iter: int | None = None,
    tol: float | None = None,
    time_limit: float | None = None,
    check_every: int | None = None,
    callbacks: Iterable[Callable[[IterationInfo], bool | None]] = (),
    progress: bool = False,
    warn: bool = True,
    compile: bool | str = False,
    threads: int | str | None = "auto",
) -> FitResult:
    r"""Iterate ``solver.step()`` until every problem has converged, ``max_iter`` or ``time_limit``.

    Convergence of a problem at a check after iteration k (every ``check_every``
    iterations), with :math:`f_p` its objective at the previous check:
    :math:`0 \le (f_p - f_k) / |f_p| < \text{tol}` (up to the round-off of the dtype), or
    :math:`|f_p - f_k| \le 10^{-12} f_0` (an exact fit at round-off level); a solver may
    replace this rule by its own (``at_check``). An increase of the objective is never
    taken for convergence. In a batch, a problem that has converged stops changing
    (``solver.set_active_``) while the others go on.

    Parameters are those of :class:`FitOptions`; unset ones take the solver's
    ``fit_defaults``.
    """
    options = FitOptions(max_iter, tol, time_limit, check_every, tuple(callbacks), progress, warn, compile, threads)
    options = options.resolved(getattr(solver, "fit_defaults", FitDefaults()))
    with _intra_op_threads(_threads_for(options.threads, solver)):
        return _loop(solver, options)


def _threads_for(threads, solver) -> int | None:
    if threads != "auto":
        return threads
    work = getattr(solver, "parallel_work", None)
    if callable(work) and work() < SMALL_WORK:
        return 1
    return None


@contextmanager
def _intra_op_threads(threads: int | None):
    """torch's intra-op threads set to ``threads`` inside the block, restored after (None: untouched)."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _loop(solver, options: FitOptions) -> FitResult:
    max_iter, tol, check_every, warn = options.max_iter, options.tol, options.check_every, options.warn
    result = FitResult(solver=getattr(solver, "name", type(solver).__name__))
    step = solver.step
    if options.compile:
        backend = options.compile if isinstance(options.compile, str) else "inductor"
        step = torch.compile(solver.step, fullgraph=True, backend=backend)
    at_check = getattr(solver, "at_check", None)
    start = time.perf_counter()
    first, batched, roundoff = _read(solver.objective())
    count = len(first)
    show = (lambda v: v) if batched else (lambda v: v[0])
    result.objective.append(show(first))
    result.iterations.append(0)
    result.times.append(0.0)
    previous = list(first)
    reference = list(first)  # first finite objective of each problem (the scale of the negligible rule)
    active = [True] * count
    stopped_at = [max_iter] * count
    converged = [False] * count
    own_rule = False
    bar = None
    if options.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iter, desc=result.solver, leave=False)
    message = f"reached max_iter={max_iter}"
    try:
        with torch.no_grad():
            for it in range(1, max_iter + 1):
                step()
                result.n_iter = it
                if it % check_every and it != max_iter:
                    continue
                done = at_check(tol) if at_check is not None else None
                own_rule = own_rule or done is not None
                current, _, _ = _read(solver.objective())
                elapsed = time.perf_counter() - start
                result.objective.append(show(current))
                result.iterations.append(it)
                result.times.append(elapsed)
                if bar is not None:
                    bar.update(it - bar.n)
                    bar.set_postfix(objective=f"{current[0]:.6g}" if not batched else f"{min(current):.6g}")
                stopping = [False] * count
                why = ""
                for b in range(count):
                    if not active[b]:
                        continue
                    if not math.isfinite(current[b]):
                        message = f"objective became {current[b]} at iteration {it}" + (f" (problem {b})" if batched else "")
                        stopping[b] = True
                        continue
                    if not math.isfinite(reference[b]):
                        reference[b] = current[b]
                    if done is not None:
                        ok = bool(done[b])
                    else:
                        ok, why = _decision(previous[b], current[b], reference[b], tol, roundoff)
                    if ok:
                        converged[b] = stopping[b] = True
                    previous[b] = current[b]
                if any(stopping):
                    for b in range(count):
                        if stopping[b]:
                            active[b] = False
                            stopped_at[b] = it
                    if not any(active):
                        if all(converged):
                            if done is not None:
                                message = f"the solver's stopping rule was met at iteration {it}"
                            elif batched:
                                message = f"every problem converged (tol={tol:g}) by iteration {it}"
                            else:
                                message = f"{why} at iteration {it}"
                        break
                    if hasattr(solver, "set_active_"):
                        solver.set_active_(active)
                if any(cb(IterationInfo(it, show(current), elapsed, solver)) for cb in options.callbacks):
                    message = f"stopped by a callback at iteration {it}"
                    break
                if options.time_limit is not None and elapsed >= options.time_limit:
                    message = f"reached time_limit={options.time_limit:g}s at iteration {it}"
                    break
    finally:
        if bar is not None:
            bar.close()
    for b in range(count):
        if active[b]:
            stopped_at[b] = result.n_iter
    result.message = message
    result.converged = all(converged)
    if batched:
        result.n_iter_per_problem = stopped_at
        result.converged_per_problem = converged
    if warn and not result.converged and message.startswith("reached max_iter") and (tol > 0 or own_rule) and max_iter > 0:
        what = f"{sum(not c for c in converged)} of {count} problems" if batched else result.solver
        rule = "its stopping rule" if own_rule else f"tol={tol:g}"
        warn_user(f"{what}: {message} without meeting {rule}; increase max_iter or tol", convergence_warning())
    return result


def fit_solver(solver, options: FitOptions | None = None):
    """The path of every model: :func:`run_fit`, then ``solver.finish()``.

    Returns
    -------
    (FitResult, SolverOutput)
        The output's ``extra`` is merged into the result's.
    """
    options = options or FitOptions()
    result = run_fit(
        solver,
        max_iter=options.max_iter,
        tol=options.tol,
        time_limit=options.time_limit,
        check_every=options.check_every,
        callbacks=options.callbacks,
        progress=options.progress,
        warn=options.warn,
        compile=options.compile,
        threads=options.threads,
    )
    output = solver.finish()
    result.extra.update(output.extra)
    return result, output
