"""The one registry of solvers and initialisations, looked up by name (no if/elif dispatch).

Solvers register themselves with :func:`register_solver` under a *family* (the kind of
problem they solve); models find them with :func:`get_solver` and never import solver
modules. This module imports nothing of the package: the built-in solvers register when
``torchnmf_l1`` is imported (its ``__init__`` imports :mod:`torchnmf_l1.solvers`), so the
tables are complete before any model can be created.

Families
--------
``"nmf"``          X ~ WH for a loss (``NMF``), batched problems too;
``"separable"``    column selection X ~ X(:, K) H (``SeparableNMF``);
``"dictionary"``   atoms of a dictionary, X ~ D(:, K) H (``DictionaryNMF``);
``"cp"``           nonnegative CP tensor decomposition (``NonnegativeCP``, ``DictionaryCP``);
``"streaming"``    X read in column blocks (``StreamingNMF``);
``"distributed"``  one rank's share of a data-parallel fit (``torchnmf_l1.distributed``);
``"nnls"``         batched nonnegative codes for a fixed dictionary (``NNLSLayer``);
``"sparse"``       low-rank sparse component analysis, X ~ WH with k-sparse columns of H (``LRSCA``).
"""

from __future__ import annotations

from typing import Callable

__all__ = [
    "FAMILIES",
    "register_solver",
    "get_solver",
    "available_solvers",
    "default_solver",
    "register_init",
    "get_init",
    "available_inits",
]

FAMILIES = ("nmf", "separable", "dictionary", "cp", "streaming", "distributed", "nnls", "sparse")

_SOLVERS: dict[str, dict[str, type]] = {family: {} for family in FAMILIES}
_DEFAULT_SOLVER: dict[tuple[str, str], str] = {}
_INITS: dict[str, dict[str, Callable]] = {"nmf": {}, "cp": {}}


def _check_family(family: str, table: dict) -> None:
    if family not in table:
        raise ValueError(f"unknown family {family!r}; families: {sorted(table)}")


def register_solver(name: str, *, family: str = "nmf", default_for: tuple[str, ...] = ()):
    """Class decorator registering a solver under ``name`` (case-insensitive) in ``family``.

    ``default_for`` lists the loss names for which this solver is the family's default.
    The class gets ``name`` and ``family`` attributes.
    """
    _check_family(family, _SOLVERS)

    def decorate(cls):
        key = name.lower()
        table = _SOLVERS[family]
        if key in table and table[key] is not cls:
            raise ValueError(f"solver {name!r} is already registered in family {family!r}")
        table[key] = cls
        cls.name = key
        cls.family = family
        for loss in default_for:
            _DEFAULT_SOLVER[(family, loss)] = key
        return cls

    return decorate


def available_solvers(family: str | None = "nmf") -> list[str]:
    """Names of the registered solvers of ``family`` (every family's when None), sorted."""
    if family is None:
        return sorted({name for table in _SOLVERS.values() for name in table})
    _check_family(family, _SOLVERS)
    return sorted(_SOLVERS[family])


def get_solver(name: str, *, family: str = "nmf") -> type:
    """The solver class registered as ``name`` in ``family``; ValueError naming the choices otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"solver must be a string, got {name!r}")
    _check_family(family, _SOLVERS)
    try:
        return _SOLVERS[family][name.lower()]
    except KeyError:
        raise ValueError(f"unknown solver {name!r} for {family}; available: {available_solvers(family)}") from None


def default_solver(loss: str, *, family: str = "nmf") -> str:
    """The default solver name of ``family`` for a canonical loss name."""
    try:
        return _DEFAULT_SOLVER[(family, loss)]
    except KeyError:
        raise ValueError(
            f"no solver is registered for loss {loss!r}; available solvers: {available_solvers(family)}"
        ) from None


def register_init(name: str, *, family: str = "nmf"):
    """Function decorator registering an initialisation under ``name`` (case-insensitive)."""
    _check_family(family, _INITS)

    def decorate(fn):
        _INITS[family][name.lower()] = fn
        return fn

    return decorate


def get_init(name: str, *, family: str = "nmf") -> Callable:
    """The initialisation registered as ``name``; ValueError naming the choices otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"init must be a string, got {name!r}")
    _check_family(family, _INITS)
    try:
        return _INITS[family][name.lower()]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; available: {available_inits(family)}") from None


def available_inits(family: str = "nmf") -> list[str]:
    """Names of the registered initialisations of ``family``, sorted."""
    _check_family(family, _INITS)
    return sorted(_INITS[family])
