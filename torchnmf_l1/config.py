"""Run configurations for the command line: TOML files, validated against a schema.

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

    [model]
    name = "nmf"                 # torchnmf-l1 list shows the models of this version
    rank = 6
    loss = "frobenius"
    solver = "hals"
    seed = 0
    options = {}                 # other keyword arguments of the model

    [fit]
    max_iter = 200
    tol = 1e-4

    [output]
    figures = true
    plots = ["convergence", "abundances", "spectra"]

Every problem raises :class:`ConfigError` naming the key, the value received and the
allowed values.
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
    "is_run_config",
    "load_config",
    "apply_override",
    "validate_config",
]

# model name -> (attribute on the torchnmf_l1 package, family of its solvers in the registry).
MODELS: dict[str, tuple[str, str]] = {
    "nmf": ("NMF", "nmf"),
    "separable": ("SeparableNMF", "separable"),
    "dictionary": ("DictionaryNMF", "dictionary"),
    "cp": ("NonnegativeCP", "cp"),
    "dictionary_cp": ("DictionaryCP", "cp"),
}

PLOTS = ("convergence", "abundances", "spectra", "basis", "words")


class ConfigError(ValueError):
    """A run configuration that is missing, malformed or out of range."""


def available_models() -> list[str]:
    """Names of the models of :data:`MODELS` present in this version of the package."""
    import torchnmf_l1

    return [name for name, (attr, _) in MODELS.items() if getattr(torchnmf_l1, attr, None) is not None]


def get_model_class(name: str):
    """The class of model ``name``; ConfigError when unknown or not in this version."""
    import torchnmf_l1

    if name not in MODELS:
        raise ConfigError(f"model.name: unknown model {name!r}; allowed: {sorted(MODELS)}")
    attr, _ = MODELS[name]
    cls = getattr(torchnmf_l1, attr, None)
    if cls is None:
        raise ConfigError(
            f"model.name: model {name!r} is not available in this version (no torchnmf_l1.{attr}); available: {available_models()}"
        )
    return cls


# ---------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class Field:
    types: tuple
    default: Any = None
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    choices: Callable[[dict], list] | tuple | None = None


def _positive_int(v):
    return v >= 1


def _nonneg(v):
    return v >= 0 and math.isfinite(v)


def _positive(v):
    return v > 0 and math.isfinite(v)


def _solver_choices(config: dict) -> list:
    from .registry import available_solvers

    name = config.get("model", {}).get("name", "nmf")
    return available_solvers(MODELS.get(name, (None, name))[1])


def _loss_choices(config: dict) -> list:
    from .problem import _LOSS_FUNCTIONS

    return sorted(_LOSS_FUNCTIONS) + ["euclidean", "fro", "itakura-saito", "kullback-leibler"]


def _init_choices(config: dict) -> list:
    from .registry import available_inits

    return available_inits()


def _shape2(v):
    return len(v) == 2 and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in v)


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
        "true_rank": Field((int,), 4, _positive_int, "an integer >= 1"),
        "noise": Field((int, float), 0.0, _nonneg, "a number >= 0"),
        "data_seed": Field((int,), 0, _nonneg, "an integer >= 0"),
    },
    "model": {
        "name": Field((str,), "nmf", choices=tuple(MODELS)),
        "rank": Field((int,), None, _positive_int, "an integer >= 1"),
        "loss": Field((str,), None, choices=_loss_choices),
        "beta": Field((int, float), None),
        "zero_weight": Field((int, float), None, _nonneg, "a number >= 0"),
        "solver": Field((str,), None, choices=_solver_choices),
        "init": Field((str,), None, choices=_init_choices),
        "seed": Field((int,), 0, _nonneg, "an integer >= 0"),
        "options": Field((dict,), {}),
    },
    "fit": {
        "max_iter": Field((int,), 200, _nonneg, "an integer >= 0"),
        "tol": Field((int, float), 1e-4, _nonneg, "a number >= 0"),
        "time_limit": Field((int, float), None, _positive, "a number of seconds > 0"),
        "check_every": Field((int,), 10, _positive_int, "an integer >= 1"),
    },
    "output": {
        "figures": Field((bool,), True),
        "plots": Field((list,), None, lambda v: all(p in PLOTS for p in v), f"a list drawn from {list(PLOTS)}"),
        "top_words": Field((int,), 10, _positive_int, "an integer >= 1"),
    },
}

REQUIRED = (("model", "rank"),)


def is_run_config(raw: dict) -> bool:
    """True when a parsed TOML document is meant for the command line (has ``[run]``)."""
    return isinstance(raw.get("run"), dict)


def load_config(path, overrides=()) -> dict:
    """Read a run config, apply ``section.key=value`` overrides, validate, fill in defaults.

    ``data.path`` and ``data.vocabulary`` are resolved relative to the config file's
    folder (and stored absolute).
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
    return config


def validate_config(raw: dict, *, where: str = "config") -> dict:
    """Check every key of ``raw`` against :data:`SCHEMA`; return a copy with defaults filled in."""
    config: dict = {}
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        raise ConfigError(f"{where}: unknown table [{unknown[0]}]; allowed tables: {list(SCHEMA)}")
    for section, fields in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: {section} must be a table [{section}], got {given!r}")
        bad = sorted(set(given) - set(fields))
        if bad:
            raise ConfigError(f"{where}: unknown key {section}.{bad[0]}; allowed keys in [{section}]: {sorted(fields)}")
        config[section] = {k: copy.deepcopy(f.default) for k, f in fields.items()}
        config[section].update(copy.deepcopy(given))
    if isinstance(config["model"]["name"], str):
        get_model_class(config["model"]["name"])
    for section, fields in SCHEMA.items():
        for key, f in fields.items():
            if key not in raw.get(section, {}):
                continue
            value = config[section][key]
            full = f"{section}.{key}"
            if isinstance(value, bool) and bool not in f.types or not isinstance(value, f.types):
                names = " or ".join(t.__name__ for t in f.types)
                raise ConfigError(f"{where}: {full} must be {names}, got {value!r} ({type(value).__name__})")
            if f.check is not None and not f.check(value):
                raise ConfigError(f"{where}: {full} = {value!r} is out of range; allowed: {f.allowed}")
            if f.choices is not None:
                choices = list(f.choices(config) if callable(f.choices) else f.choices)
                compare = value.lower() if section == "model" and key in ("loss", "solver", "init") else value
                if compare not in choices:
                    raise ConfigError(f"{where}: {full} = {value!r} is not allowed; allowed values: {choices}")
    for section, key in REQUIRED:
        if config[section][key] is None:
            raise ConfigError(f"{where}: missing required key {section}.{key}")
    data = config["data"]
    if data["synthetic"] == (data["path"] is not None):
        raise ConfigError(f"{where}: give exactly one of data.path = \"FILE\" or data.synthetic = true")
    return config


def apply_override(raw: dict, assignment: str) -> None:
    """Apply ``section.key=value`` to a raw (unvalidated) config; value parsed as TOML.

    A value that is not valid TOML (``cuda``, ``hals``) is taken as a string.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected section.key=value")
    dotted, text = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"--set {assignment!r}: the key must be section.key (e.g. model.rank), got {dotted.strip()!r}")
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
