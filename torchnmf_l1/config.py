"""Run configurations for the command line: TOML files, validated against each model's own schema.

A file is a *run config* (read by ``torchnmf-l1 run``) when it has a top-level ``[run]``
table; other TOML files under ``configs/`` belong to experiment scripts and are not
validated here. Layout::

    [run]                        # marker; where and how to run
    name = "urban-hals"
    output = "runs/urban-hals"   # relative to the current directory
    device = "cpu"               # "cpu", "cuda", "cuda:1", ...
    dtype = "float32"

    [data]
    path = "../shared/data/urban_undersampled4.mat"   # relative to the config file
    key = "M"
    image_shape = [77, 77]
    order = "F"
    # or: synthetic = true, m = 50, n = 80, true_rank = 4, noise = 0.01, data_seed = 0
    #     (for the CP models: synthetic = true, shape = [20, 30, 40])

    [model]
    name = "nmf"                 # one of MODELS; `torchnmf-l1 list` shows each one's keys
    rank = 6
    loss = "frobenius"           # ... any key of the model's hyperparameter table
    options = {}                 # the solver's options, checked by the solver's own table

    [fit]                        # the options of the fit loop (torchnmf_l1.FitOptions), and
    max_iter = 200               # the model's own fit options (StreamingNMF: checkpoint, ...)
    tol = 1e-4

    [output]
    figures = true
    plots = ["convergence", "abundances", "spectra"]

    [sweep]                      # `torchnmf-l1 sweep` only: the ranks and replicates of rank_sweep
    ranks = [2, 3, 4, 5, 6]
    n_replicates = 20
    holdout = 0.1                # share of entries held out for the cross-validated error

The ``[model]`` schema of a model is generated from its ``hyperparameters`` table (the
table its constructor checks), so a config accepts exactly what the model accepts, with
the same allowed values; ``dictionary`` keys take ``"self"`` (X is its own dictionary),
a file path, or ``{path = ..., key = ...}``. Every problem raises :class:`ConfigError`
naming the key, the value received and the allowed values.
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConfigError",
    "MODELS",
    "PLOTS",
    "SCHEMA",
    "available_models",
    "get_model_class",
    "model_schema",
    "fit_schema",
    "is_run_config",
    "load_config",
    "apply_override",
    "validate_config",
]

# model name -> attribute on the torchnmf_l1 package; the class carries its hyperparameter
# table and the family of its solvers (``solver_family``).
MODELS: dict[str, str] = {
    "nmf": "NMF",
    "separable": "SeparableNMF",
    "dictionary": "DictionaryNMF",
    "cp": "NonnegativeCP",
    "dictionary_cp": "DictionaryCP",
    "streaming": "StreamingNMF",
}
TENSOR_MODELS = ("cp", "dictionary_cp")  # their data is a tensor of order >= 2, not a matrix

PLOTS = ("convergence", "abundances", "spectra", "basis", "words")


class ConfigError(ValueError):
    """A run configuration that is missing, malformed or out of range."""


def available_models() -> list[str]:
    """Names of the models of :data:`MODELS`."""
    return list(MODELS)


def get_model_class(name: str):
    """The class of model ``name``; ConfigError when unknown."""
    import torchnmf_l1

    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; allowed: {sorted(MODELS)}")
    return getattr(torchnmf_l1, MODELS[name])


# ---------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Field:
    """One config key: accepted types, default, a range check, allowed values, or a Param."""

    types: tuple
    default: Any = None
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    choices: Callable[[dict], list] | tuple | None = None
    param: Any = None  # a torchnmf_l1.params.Param: checked by its constraint instead

    @classmethod
    def from_param(cls, param) -> "Field":
        return cls((object,), param.default, param=param)


def _positive_int(v):
    return v >= 1


def _nonneg(v):
    return v >= 0 and math.isfinite(v)


def _shape2(v):
    return len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)


def _shape_n(v):
    return len(v) >= 2 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)


def _device_ok(v):
    import torch

    try:
        torch.device(v)
    except (RuntimeError, TypeError):
        return False
    return True


SCHEMA: dict[str, dict[str, Field]] = {
    "run": {
        "name": Field((str,), "run"),
        "output": Field((str,), None),
        "device": Field((str,), "cpu", _device_ok, "a torch device such as 'cpu', 'cuda', 'cuda:1'"),
        "dtype": Field((str,), "float32", choices=("float32", "float64")),
        "threads": Field((int,), None, _positive_int, "an integer >= 1"),
    },
    "data": {
        "path": Field((str,), None),
        "key": Field((str,), None),
        "image_shape": Field((list,), None, _shape2, "two positive integers [rows, cols]"),
        "order": Field((str,), None, choices=("C", "F")),
        "transpose": Field((bool,), False),
        "vocabulary": Field((str,), None),
        "synthetic": Field((bool,), False),
        "m": Field((int,), 60, _positive_int, "an integer >= 1"),
        "n": Field((int,), 80, _positive_int, "an integer >= 1"),
        "shape": Field((list,), None, _shape_n, "two or more positive integers (a synthetic tensor)"),
        "true_rank": Field((int,), 4, _positive_int, "an integer >= 1"),
        "noise": Field((int, float), 0.0, _nonneg, "a number >= 0"),
        "data_seed": Field((int,), 0, _nonneg, "an integer >= 0"),
    },
    "sweep": {  # read by `torchnmf-l1 sweep` only (torchnmf_l1.sweep.rank_sweep)
        "ranks": Field((list,), None, lambda v: len(v) > 0 and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1
                                                                    for r in v), "a non-empty list of integers >= 1"),
        "n_replicates": Field((int,), 20, lambda v: v >= 2, "an integer >= 2"),
        "holdout": Field((int, float), 0.1, lambda v: 0 <= v <= 0.9, "a number in [0, 0.9]"),
        "seed": Field((int,), 0, _nonneg, "an integer >= 0"),
    },
    "output": {
        "figures": Field((bool,), True),
        "plots": Field((list,), None, lambda v: all(p in PLOTS for p in v), f"a list drawn from {list(PLOTS)}"),
        "top_words": Field((int,), 10, _positive_int, "an integer >= 1"),
    },
}
# what the fit loop takes from a config (FitOptions minus the callbacks and the progress flag)
_FIT_KEYS = ("max_iter", "tol", "time_limit", "check_every", "compile", "threads", "warn")


def model_schema(name: str) -> dict[str, Field]:
    """The ``[model]`` table of model ``name``: its hyperparameter table, ``name`` and ``options``."""
    cls = get_model_class(name)
    schema = {"name": Field((str,), "nmf", choices=tuple(MODELS))}
    for key, param in cls.hyperparameters.items():
        schema[key] = Field.from_param(param)
    schema["options"] = Field((dict,), {})
    return schema


def fit_schema(name: str) -> dict[str, Field]:
    """The ``[fit]`` table of model ``name``: the loop's options and the model's own fit options."""
    from .params import Boolean, Integer, Number, OneOf, Param

    loop = {
        "max_iter": Param(None, OneOf(None, Integer(0)), "maximum number of iterations"),
        "tol": Param(None, OneOf(None, Number(0)), "tolerance on the relative decrease"),
        "time_limit": Param(None, OneOf(None, Number(0, closed="neither")), "seconds"),
        "check_every": Param(None, OneOf(None, Integer(1)), "iterations between checks"),
        "compile": Param(False, Boolean(), "compile the step (torch.compile, fullgraph)"),
        "threads": Param("auto", None, "intra-op threads: an integer, 'auto' or None"),
        "warn": Param(True, Boolean(), "warn when max_iter stops the fit"),
    }
    schema = {key: Field.from_param(p) for key, p in loop.items()}
    for key, param in getattr(get_model_class(name), "fit_hyperparameters", {}).items():
        schema[key] = Field.from_param(param)
    return schema


def is_run_config(raw: dict) -> bool:
    """True when a parsed TOML document is meant for the command line (has ``[run]``)."""
    return isinstance(raw.get("run"), dict)


def load_config(path, overrides=()) -> dict:
    """Read a run config, apply ``section.key=value`` overrides, validate, fill in defaults.

    ``data.path``, ``data.vocabulary`` and file references of dictionaries are resolved
    relative to the config file's folder (and stored absolute).
    """
    path = Path(path)
    raw = read_raw(path)
    if not is_run_config(raw):
        raise ConfigError(f"{path}: not a run config (it has no [run] table; experiment configs are read by their scripts)")
    for assignment in overrides:
        apply_override(raw, assignment)
    config = validate_config(raw, where=str(path))
    data = config["data"]
    for key in ("path", "vocabulary"):
        if data[key] is not None:
            data[key] = str((path.parent / data[key]).resolve())
    dictionary = config["model"].get("dictionary")
    if isinstance(dictionary, dict):
        dictionary["path"] = str((path.parent / dictionary["path"]).resolve())
    return config


def _check_field(where: str, full: str, value, f: Field, config: dict):
    if f.param is not None:
        from .params import check_value

        if f.param.constraint is None:
            return value
        try:
            return check_value("", full, value, f.param.constraint)
        except TypeError:
            raise ConfigError(f"{where}: {full} must be {f.param.constraint.description}, got {value!r} "
                              f"({type(value).__name__})") from None
        except ValueError:
            raise ConfigError(f"{where}: {full} = {value!r} is not allowed; allowed: {f.param.constraint.description}") from None
    if isinstance(value, bool) and bool not in f.types or not isinstance(value, f.types):
        names = " or ".join(t.__name__ for t in f.types)
        raise ConfigError(f"{where}: {full} must be {names}, got {value!r} ({type(value).__name__})")
    if f.check is not None and not f.check(value):
        raise ConfigError(f"{where}: {full} = {value!r} is out of range; allowed: {f.allowed}")
    if f.choices is not None:
        choices = list(f.choices(config) if callable(f.choices) else f.choices)
        if value not in choices:
            raise ConfigError(f"{where}: {full} = {value!r} is not allowed; allowed values: {choices}")
    return value


def _check_dictionary_reference(where: str, value) -> None:
    if value is None or value == "self" or isinstance(value, str):
        return
    if isinstance(value, dict) and set(value) <= {"path", "key"} and isinstance(value.get("path"), str):
        return
    raise ConfigError(f"{where}: model.dictionary must be \"self\", a file path or {{path = \"...\", key = \"...\"}}, got {value!r}")


def validate_config(raw: dict, *, where: str = "config") -> dict:
    """Check every key of ``raw`` against the schema of its model; return a copy with defaults filled in."""
    model_raw = raw.get("model", {})
    if not isinstance(model_raw, dict):
        raise ConfigError(f"{where}: model must be a table [model], got {model_raw!r}")
    name = model_raw.get("name", "nmf")
    get_model_class(name)
    schema = {**SCHEMA, "model": model_schema(name), "fit": fit_schema(name)}
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ConfigError(f"{where}: unknown table [{unknown[0]}]; allowed tables: {list(schema)}")
    config: dict = {}
    for section, table in schema.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: {section} must be a table [{section}], got {given!r}")
        bad = sorted(set(given) - set(table))
        if bad:
            raise ConfigError(f"{where}: unknown key {section}.{bad[0]}; allowed keys in [{section}]"
                              + (f" of model {name!r}" if section in ("model", "fit") else "") + f": {sorted(table)}")
        config[section] = {k: copy.deepcopy(f.default) for k, f in table.items()}
        config[section].update(copy.deepcopy(given))
    for section, table in schema.items():
        for key, f in table.items():
            if key in raw.get(section, {}) and not (section == "model" and key == "dictionary"):
                config[section][key] = _check_field(where, f"{section}.{key}", config[section][key], f, config)
    model = config["model"]
    for key, f in schema["model"].items():
        if f.param is not None and f.param.required and model.get(key) is None and key not in model_raw:
            raise ConfigError(f"{where}: missing required key model.{key}")
    if "dictionary" in model:
        _check_dictionary_reference(where, model["dictionary"])
    data = config["data"]
    if data["synthetic"] == (data["path"] is not None):
        raise ConfigError(f"{where}: give exactly one of data.path = \"FILE\" or data.synthetic = true")
    return config


def apply_override(raw: dict, assignment: str) -> None:
    """Apply ``section.key=value`` to a raw (unvalidated) config; value parsed as TOML.

    ``null`` and ``none`` (any case) set the key to None (TOML has no null); a value that
    is not valid TOML (``cuda``, ``hals``) is taken as a string.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    dotted, text = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {assignment!r}: the key must be section.key (e.g. model.rank), got {dotted.strip()!r}")
    if text.strip().lower() in ("null", "none"):
        value = None
    else:
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
    section, key = parts
    table = raw.setdefault(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"--set {assignment!r}: {section} is not a table")
    table[key] = value


def read_raw(path) -> dict:
    """Parse a TOML file without validation (ConfigError when missing or malformed)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
