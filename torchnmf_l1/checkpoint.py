"""Checkpoint and resume for long fits.

A checkpoint holds the solver's state (factors and any statistics, from its
``state_dict()``), the number of iterations done, the torch RNG states (the global CPU
state, and the state of the fit's ``torch.Generator`` when one is given), the data shape,
the rank and the package and format versions. It is written atomically: to
``path + ".tmp"``, flushed and fsynced, then moved over ``path`` with :func:`os.replace`,
so a crash while writing leaves the previous checkpoint intact.

:class:`CheckpointedSolver` wraps any solver (``step``, ``objective``, ``state_dict``,
``load_state_dict``) for :func:`torchnmf_l1.fit.run_fit` and writes a checkpoint every
``every`` iterations; :func:`load_checkpoint` refuses a file from another format
version, shape, rank or solver with a ``ValueError`` naming both values.
"""

from __future__ import annotations

import os

import torch

__all__ = ["CHECKPOINT_VERSION", "CheckpointedSolver", "save_checkpoint", "load_checkpoint", "restore_rng"]

CHECKPOINT_VERSION = 1


def _package_version() -> str:
    from . import __version__

    return __version__


def save_checkpoint(path, *, solver, iteration: int, shape, rank: int, generator: torch.Generator | None = None) -> None:
    """Write ``solver``'s state and the RNG states to ``path`` atomically."""
    path = os.fspath(path)
    state = {
        "format_version": CHECKPOINT_VERSION,
        "package_version": _package_version(),
        "solver": getattr(solver, "name", type(solver).__name__),
        "shape": tuple(int(s) for s in shape),
        "rank": int(rank),
        "iteration": int(iteration),
        "solver_state": {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in solver.state_dict().items()},
        "torch_rng_state": torch.get_rng_state(),
        "generator_state": None if generator is None else generator.get_state(),
    }
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path, *, shape, rank: int, solver_name: str | None = None) -> dict:
    """Read a checkpoint and check that it belongs to this problem.

    Raises
    ------
    ValueError
        If the file is not a checkpoint of this format version, or its data shape,
        rank or solver differ from the ones given.
    """
    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable / truncated file
        raise ValueError(f"cannot read checkpoint {path!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(state, dict) or "format_version" not in state:
        raise ValueError(f"{path!r} is not a torchnmf_l1 checkpoint")
    if state["format_version"] != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {path!r} has format version {state['format_version']!r}, this torchnmf_l1 "
            f"({_package_version()}) reads version {CHECKPOINT_VERSION}"
        )
    shape = tuple(int(s) for s in shape)
    if tuple(state["shape"]) != shape:
        raise ValueError(f"checkpoint {path!r} is for data of shape {tuple(state['shape'])}, got data of shape {shape}")
    if state["rank"] != rank:
        raise ValueError(f"checkpoint {path!r} is for rank {state['rank']}, got rank {rank}")
    if solver_name is not None and state["solver"] != solver_name:
        raise ValueError(f"checkpoint {path!r} was written by solver {state['solver']!r}, got solver {solver_name!r}")
    return state


def restore_rng(state: dict, generator: torch.Generator | None = None) -> int:
    """Restore the RNG states of a checkpoint; returns its iteration count (the solver
    state, ``state["solver_state"]``, is loaded by the solver itself)."""
    torch.set_rng_state(state["torch_rng_state"])
    if generator is not None and state["generator_state"] is not None:
        generator.set_state(state["generator_state"])
    return int(state["iteration"])


class CheckpointedSolver:
    """Wraps a solver so that :func:`run_fit` writes a checkpoint every ``every`` iterations.

    Parameters
    ----------
    solver : object with ``step``, ``objective``, ``state_dict``, ``load_state_dict``
    path : str or os.PathLike
    every : int
        Iterations between checkpoints (>= 1).
    shape : tuple of int, or a callable returning it
        Data shape written into the checkpoint (a callable when the shape of a stream
        is known only after its first pass).
    rank : int
    start_iteration : int
        Iterations already done (when resuming), so that the counter continues.
    generator : torch.Generator, optional
        Its state is saved with the global torch RNG state.
    """

    def __init__(self, solver, path, *, every: int, shape, rank: int, start_iteration: int = 0,
                 generator: torch.Generator | None = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint_every must be an integer >= 1, got {every!r}")
        self.solver = solver
        self.name = getattr(solver, "name", type(solver).__name__)
        self.path = path
        self.every = every
        self.shape = shape
        self.rank = rank
        self.iteration = start_iteration
        self.generator = generator

    def step(self) -> None:
        self.solver.step()
        self.iteration += 1
        if self.iteration % self.every == 0:
            self.save()

    def save(self) -> None:
        shape = self.shape() if callable(self.shape) else self.shape
        save_checkpoint(self.path, solver=self.solver, iteration=self.iteration, shape=shape,
                        rank=self.rank, generator=self.generator)

    def objective(self):
        return self.solver.objective()

    @property
    def fit_defaults(self):
        return self.solver.fit_defaults

    def at_check(self, tol):
        return self.solver.at_check(tol)

    def set_active_(self, active) -> None:
        self.solver.set_active_(active)

    def finish(self):
        return self.solver.finish()
