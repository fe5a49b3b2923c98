"""Registries of solvers and initialisations, looked up by name (no if/elif dispatch).

Solvers register themselves with :func:`register_solver`; models find them with
:func:`get_solver` and never import solver modules.
"""

from __future__ import annotations

from typing import Callable

__all__ = [
    "register_solver",
    "get_solver",
    "available_solvers",
    "default_solver",
    "register_init",
    "get_init",
    "available_inits",
]

_SOLVERS: dict[str, dict[str, type]] = {}
_DEFAULT_SOLVER: dict[tuple[str, str], str] = {}
_INITS: dict[str, Callable] = {}


def register_solver(name: str, *, model: str = "nmf", default_for: tuple[str, ...] = ()):
    """Class decorator registering a solver under ``name`` (case-insensitive) for ``model``.

    ``default_for`` lists the loss names for which this solver is the default.
    """

    def decorate(cls):
        key = name.lower()
        table = _SOLVERS.setdefault(model, {})
        if key in table and table[key] is not cls:
            raise ValueError(f"solver {name!r} is already registered for model {model!r}")
        table[key] = cls
        cls.name = key
        for loss in default_for:
            _DEFAULT_SOLVER[(model, loss)] = key
        return cls

    return decorate


def available_solvers(model: str | None = "nmf") -> list[str]:
    """Names of the registered solvers of ``model`` (all models' when None), sorted."""
    _load_builtin()
    if model is None:
        return sorted({name for table in _SOLVERS.values() for name in table})
    return sorted(_SOLVERS.get(model, {}))


def get_solver(name: str, *, model: str = "nmf") -> type:
    """The solver class registered as ``name``; ValueError naming the choices otherwise."""
    _load_builtin()
    if not isinstance(name, str):
        raise TypeError(f"solver must be a string, got {name!r}")
    try:
        return _SOLVERS[model][name.lower()]
    except KeyError:
        raise ValueError(
            f"unknown solver {name!r} for {model}; available: {available_solvers(model)}"
        ) from None


def default_solver(loss: str, *, model: str = "nmf") -> str:
    """The default solver name for a canonical loss name."""
    _load_builtin()
    try:
        return _DEFAULT_SOLVER[(model, loss)]
    except KeyError:
        raise ValueError(
            f"no solver is registered for loss {loss!r}; available solvers: {available_solvers(model)}"
        ) from None


def register_init(name: str):
    """Function decorator registering an initialisation under ``name`` (case-insensitive)."""

    def decorate(fn):
        _INITS[name.lower()] = fn
        return fn

    return decorate


def get_init(name: str) -> Callable:
    _load_builtin()
    if not isinstance(name, str):
        raise TypeError(f"init must be a string, got {name!r}")
    try:
        return _INITS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; available: {available_inits()}") from None


def available_inits() -> list[str]:
    _load_builtin()
    return sorted(_INITS)


def _load_builtin() -> None:
    # Importing the solver package registers the built-in solvers; done lazily so that
    # the registry itself (imported by models) never imports solver modules at import time.
    from . import init, solvers  # noqa: F401
