"""Parameter tables: one declaration per option, one check, one message format.

Every solver (and every model) declares its keyword options as a table
``{name: Param(default, constraint, doc)}``, in the spirit of scikit-learn's
``_parameter_constraints``; :func:`check_params` is the one place where options are
checked against such a table. A bad value raises ``ValueError`` (or ``TypeError`` for a
value of the wrong kind) in one format::

    solver 'hals': option 'alpha' must be a number >= 0, got -1

and an unknown name raises ``TypeError`` listing the names the table knows. The command
line builds its configuration schema from the same tables, so what a config accepts is
exactly what the model accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable

__all__ = [
    "Param",
    "Constraint",
    "Number",
    "Integer",
    "Choice",
    "Boolean",
    "OneOf",
    "Anything",
    "Registered",
    "check_params",
    "check_value",
    "defaults",
]


class Constraint:
    """What a parameter accepts: ``accepts(value)`` and a phrase for the message."""

    description = "a valid value"

    def accepts(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def normalize(self, value):
        """The value as stored (e.g. a lower-cased choice); called once it is accepted."""
        return value

    def wrong_type(self, value) -> bool:
        """True when ``value`` is of the wrong kind altogether (``TypeError`` rather than ``ValueError``)."""
        return False


@dataclass(frozen=True)
class Number(Constraint):
    """A finite real number in an interval (``low``/``high`` None: unbounded)."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"  # which ends are included: "both", "left", "right", "neither"
    integer: bool = False

    @property
    def description(self) -> str:
        kind = "an integer" if self.integer else "a number"
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and self.high is not None:
            return f"{kind} in {'[' if left else '('}{self.low:g}, {self.high:g}{']' if right else ')'}"
        if self.low is not None:
            return f"{kind} {'>=' if left else '>'} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<=' if right else '<'} {self.high:g}"
        return "an integer" if self.integer else "a finite number"

    def wrong_type(self, value) -> bool:
        if isinstance(value, bool):
            return True
        return not isinstance(value, Integral if self.integer else Real)

    def accepts(self, value) -> bool:
        if self.wrong_type(value):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (v < self.low or (v == self.low and not left)):
            return False
        if self.high is not None and (v > self.high or (v == self.high and not right)):
            return False
        return True

    def normalize(self, value):
        return int(value) if self.integer else float(value)


def Integer(low: int | None = None, high: int | None = None) -> Number:
    """An integer in [low, high]."""
    return Number(low, high, "both", integer=True)


@dataclass(frozen=True)
class Choice(Constraint):
    """One of a fixed set of values; strings compare case-insensitively and are stored lower-case."""

    values: tuple

    def __init__(self, *values):
        object.__setattr__(self, "values", tuple(values))

    @property
    def description(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def accepts(self, value) -> bool:
        if isinstance(value, str):
            return value.lower() in [v.lower() for v in self.values if isinstance(v, str)]
        return any(value is v or (type(value) is type(v) and value == v) for v in self.values)

    def normalize(self, value):
        return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True)
class Boolean(Constraint):
    description = "True or False"

    def wrong_type(self, value) -> bool:
        return not isinstance(value, bool)

    def accepts(self, value) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Anything(Constraint):
    """Any value (checked where it is used), described by ``what``."""

    what: str = "any value"

    @property
    def description(self) -> str:
        return self.what

    def accepts(self, value) -> bool:
        return True


@dataclass(frozen=True)
class OneOf(Constraint):
    """Any of several constraints (``None`` in the list accepts None)."""

    options: tuple

    def __init__(self, *options):
        object.__setattr__(self, "options", tuple(options))

    @property
    def description(self) -> str:
        return " or ".join("None" if c is None else c.description for c in self.options)

    def _first(self, value):
        for c in self.options:
            if c is None:
                if value is None:
                    return c, True
            elif c.accepts(value):
                return c, True
        return None, False

    def accepts(self, value) -> bool:
        return self._first(value)[1]

    def wrong_type(self, value) -> bool:
        return value is not None and all(c.wrong_type(value) for c in self.options if c is not None)

    def normalize(self, value):
        c, _ = self._first(value)
        return value if c is None else c.normalize(value)


@dataclass(frozen=True)
class Registered(Constraint):
    """The name of a registered solver of ``family`` (or, with ``init=True``, a registered
    initialisation), looked up in the registry when checked; stored lower-case."""

    family: str
    init: bool = False

    def _names(self) -> list[str]:
        from .registry import available_inits, available_solvers

        return available_inits(self.family) if self.init else available_solvers(self.family)

    @property
    def description(self) -> str:
        kind = "initialisation" if self.init else "solver"
        return f"a registered {self.family} {kind}: one of {', '.join(map(repr, self._names()))}"

    def wrong_type(self, value) -> bool:
        return not isinstance(value, str)

    def accepts(self, value) -> bool:
        return isinstance(value, str) and value.lower() in self._names()

    def normalize(self, value):
        return value.lower()


@dataclass(frozen=True)
class Param:
    """One option: its default, what it accepts and a line of documentation.

    ``required`` marks a parameter without a default (a model's rank, a dictionary).
    """

    default: Any
    constraint: Constraint | None = None
    doc: str = ""
    required: bool = False


def check_value(owner: str, name: str, value, constraint: Constraint | None):
    """Check one value; returns it normalized, raises in the package's one format."""
    if constraint is None or constraint.accepts(value):
        return value if constraint is None else constraint.normalize(value)
    error = TypeError if constraint.wrong_type(value) else ValueError
    raise error(f"{owner}: option {name!r} must be {constraint.description}, got {value!r}")


def check_params(table: dict[str, Param], given: dict, owner: str, *, validators: tuple[Callable, ...] = ()) -> dict:
    """Check ``given`` against ``table``; return every option, defaults filled in.

    Parameters
    ----------
    table : dict of name -> Param
    given : dict
        The options passed by the caller.
    owner : str
        Names the owner in messages, e.g. ``"solver 'hals'"``.
    validators : callables
        Checks of several options together, called with the complete dict; they raise.

    Raises
    ------
    TypeError
        An unknown option, or a value of the wrong kind.
    ValueError
        A value out of range.
    """
    unknown = sorted(set(given) - set(table))
    if unknown:
        raise TypeError(f"{owner} got unexpected option(s) {unknown}; its options are {sorted(table)}")
    out = {}
    for name, param in table.items():
        if name in given:
            out[name] = check_value(owner, name, given[name], param.constraint)
        elif param.required:
            raise TypeError(f"{owner}: missing required option {name!r} ({param.doc or param.constraint.description})")
        else:
            out[name] = param.default
    for validate in validators:
        validate(out)
    return out


def defaults(table: dict[str, Param]) -> dict:
    """``{name: default}`` of a table."""
    return {name: p.default for name, p in table.items()}
