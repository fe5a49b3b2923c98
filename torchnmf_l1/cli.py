"""Command line: ``torchnmf-l1`` (or ``python -m torchnmf_l1``).

Commands
--------
``run CONFIG.toml``
    Fit the model of a run config (see :mod:`torchnmf_l1.config`) and write, into the
    output folder, ``factors.npz``, ``report.json`` and ``figures/*.png``. Flags override
    config keys: ``--device``, ``--dtype``, ``--rank``, ``--seed``, ``--solver``,
    ``--max-iter``, ``--tol``, ``--output`` and any ``--set section.key=value``.
``info FILE``
    Shape, sparsity, nonnegativity and memory of a data file.
``list``
    Models, solvers (with their losses and options), losses and initialisations.

Exit status: 0 success; 2 bad config, bad input or bad arguments (one line naming the
key or file); 1 anything else (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main", "run_config"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A user mistake: reported in one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2 already; keep it to one line
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchnmf-l1", description="GPU-accelerated NMF on PyTorch.")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="fit the model of a TOML run config")
    run.add_argument("config", help="run config (.toml with a [run] table)")
    run.add_argument("--device", help="override run.device (cpu, cuda, cuda:1)")
    run.add_argument("--dtype", help="override run.dtype (float32, float64)")
    run.add_argument("--rank", type=int, help="override model.rank")
    run.add_argument("--seed", type=int, help="override model.seed")
    run.add_argument("--solver", help="override model.solver")
    run.add_argument("--loss", help="override model.loss")
    run.add_argument("--max-iter", type=int, dest="max_iter", help="override fit.max_iter")
    run.add_argument("--tol", type=float, help="override fit.tol")
    run.add_argument("--output", "-o", help="override run.output (the folder written)")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override any config key (value in TOML syntax); repeatable")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    run.add_argument("--no-figures", action="store_true", help="write no figures")
    run.add_argument("--quiet", "-q", action="store_true", dest="quiet_run", help=argparse.SUPPRESS)

    info = sub.add_parser("info", help="describe a data file")
    info.add_argument("file")
    info.add_argument("--key", help="variable of a .npz / .mat file")
    info.add_argument("--json", action="store_true", help="print JSON")

    lst = sub.add_parser("list", help="models, solvers, losses, initialisations")
    lst.add_argument("--json", action="store_true", help="print JSON")
    return parser


# ---------------------------------------------------------------------------- run
_FLAG_KEYS = {
    "device": "run.device", "dtype": "run.dtype", "rank": "model.rank", "seed": "model.seed",
    "solver": "model.solver", "loss": "model.loss", "max_iter": "fit.max_iter", "tol": "fit.tol",
    "output": "run.output",
}


def _overrides(args) -> list[str]:
    out = []
    for attr, key in _FLAG_KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            out.append(f"{key}={json.dumps(value)}")
    return out + list(args.set)


def _load_matrix(config: dict):
    """(X as ndarray or CSR, Dataset-like info) from config['data']."""
    import scipy.sparse

    from .io import Dataset, load_data

    data = config["data"]
    dtype = np.float64 if config["run"]["dtype"] == "float64" else np.float32
    if data["synthetic"]:
        rng = np.random.default_rng(data["data_seed"])
        W0 = rng.random((data["m"], data["true_rank"]))
        H0 = rng.random((data["true_rank"], data["n"]))
        X = W0 @ H0 + data["noise"] * rng.random((data["m"], data["n"]))
        ds = Dataset(X, source="synthetic")
        if data["image_shape"] is not None:
            ds.image_shape, ds.kind = tuple(data["image_shape"]), "cube"
    else:
        ds = load_data(data["path"], key=data["key"], image_shape=data["image_shape"], order=data["order"])
    X = ds.X
    if scipy.sparse.issparse(X):
        X = X.tocsr().astype(dtype)
    else:
        X = np.asarray(X, dtype=dtype)
        if X.ndim != 2:
            raise UsageError(f"{ds.source}: data must be a matrix, got an array of shape {X.shape}")
    if data["transpose"]:
        X = X.T.tocsr() if scipy.sparse.issparse(X) else np.ascontiguousarray(X.T)
        if ds.kind == "cube":
            ds.kind = "images"
        elif ds.kind == "images":
            ds.kind = "cube"
    ds.X = X
    return ds


def _accepts(fn, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _build_model(config: dict, shape):
    import torch

    from .config import ConfigError, get_model_class

    model_cfg, run_cfg = config["model"], config["run"]
    cls = get_model_class(model_cfg["name"])
    rank = model_cfg["rank"]
    if rank > min(shape):
        raise ConfigError(f"model.rank = {rank} is too large: it must be <= min(m, n) = {min(shape)} for data of shape {tuple(shape)}")
    device = run_cfg["device"]
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {device!r}: CUDA is not available on this machine; use 'cpu'")
    kwargs = {"device": device, "dtype": getattr(torch, run_cfg["dtype"])}
    for key in ("loss", "beta", "zero_weight", "solver", "init", "seed"):
        if model_cfg[key] is not None:
            kwargs[key] = model_cfg[key]
    kwargs.update(model_cfg["options"])
    for key in kwargs:
        if not _accepts(cls.__init__, key):
            raise ConfigError(f"model.{key}: not a parameter of {cls.__name__} (model {model_cfg['name']!r})")
    try:
        return cls(rank, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[model]: {err}") from None


def _fit_kwargs(model, config: dict, progress: bool) -> dict:
    from .config import SCHEMA, ConfigError

    kwargs = {}
    for key, value in config["fit"].items():
        if value is None:
            continue
        if _accepts(model.fit, key):
            kwargs[key] = value
        elif value != SCHEMA["fit"][key].default:
            raise ConfigError(f"fit.{key}: {type(model).__name__}.fit takes no {key!r}")
    if _accepts(model.fit, "progress"):
        kwargs["progress"] = progress
    return kwargs


def _factors(model) -> dict:
    out = {name: t for name, t in model.state_dict().items()}
    for attr in ("indices",):
        value = getattr(model, attr, None)
        if value is not None and not callable(value):
            out.setdefault(attr, value)
    return out


def _relative_error(X, W: np.ndarray, H: np.ndarray) -> float:
    import scipy.sparse

    if scipy.sparse.issparse(X):
        coo = X.tocoo()
        on_support = np.einsum("ij,ji->i", W[coo.row], H[:, coo.col])
        norm2 = float(coo.data @ coo.data)
        err2 = norm2 - 2 * float(coo.data @ on_support) + float(np.sum((W.T @ W) * (H @ H.T)))
        return float(np.sqrt(max(err2, 0.0) / norm2)) if norm2 > 0 else float("nan")
    X = np.asarray(X, dtype=np.float64)
    return float(np.linalg.norm(X - W @ H) / np.linalg.norm(X))


def _figures(folder: Path, ds, W, H, result, config: dict) -> list[str]:
    from .io import plots

    wanted = config["output"]["plots"]
    if wanted is None:
        wanted = ["convergence"]
        if ds.kind == "cube" and ds.image_shape is not None:
            wanted += ["abundances", "spectra"]
        elif ds.kind == "images" and ds.image_shape is not None:
            wanted += ["basis"]
        if config["data"]["vocabulary"] is not None:
            wanted += ["words"]
    folder.mkdir()
    written = []
    for name in wanted:
        path = folder / f"{name}.png"
        if name == "convergence":
            if result is None or not getattr(result, "objective", None):
                continue
            plots.plot_convergence(result.iterations, result.objective, path, title=f"{result.solver}: objective")
        elif name in ("abundances", "basis") and ds.image_shape is None:
            raise _config_error(f"output.plots: {name!r} needs data.image_shape")
        elif name == "abundances":
            plots.plot_abundances(H, ds.image_shape, path, order=ds.order)
        elif name == "basis":
            plots.plot_basis_images(W, ds.image_shape, path, order=ds.order)
        elif name == "spectra":
            plots.plot_spectra(W, path, wavelengths=ds.meta.get("wavelength"))
        elif name == "words":
            plots.plot_top_words(W, path, vocabulary=_vocabulary(config), n_words=min(config["output"]["top_words"], W.shape[0]))
        written.append(str(path.relative_to(folder.parent)))
    return written


def _config_error(message):
    from .config import ConfigError

    return ConfigError(message)


def _vocabulary(config):
    path = config["data"]["vocabulary"]
    if path is None:
        return None
    try:
        return Path(path).read_text().split()
    except OSError as err:
        raise _config_error(f"data.vocabulary: cannot read {path} ({err.strerror})") from None


def run_config(config: dict, output, *, progress: bool = False, figures: bool = True, overwrite: bool = False) -> dict:
    """Fit the model of a validated config and write its results into ``output``.

    Everything is written into a temporary folder moved onto ``output`` at the end, so
    a failure leaves nothing behind. Returns the report (also written as report.json).
    """
    import torch

    from . import __version__
    from .io.outputs import atomic_directory, environment, save_factors, write_report
    from .io.plots import have_matplotlib

    if config["run"]["threads"] is not None:
        torch.set_num_threads(config["run"]["threads"])
    ds = _load_matrix(config)
    X = ds.X
    model = _build_model(config, X.shape)
    fit_kwargs = _fit_kwargs(model, config, progress)
    if figures and config["output"]["figures"] and not have_matplotlib():
        raise _config_error("output.figures = true needs matplotlib (pip install 'torchnmf-l1[plot]'); set it to false or pass --no-figures")
    with atomic_directory(output, overwrite=overwrite) as tmp:
        start = time.perf_counter()
        try:
            result = model.fit(X, **fit_kwargs)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{ds.source}: {err}") from None
        elapsed = time.perf_counter() - start
        factors = _factors(model)
        W = factors.get("W")
        H = factors.get("H")
        W = W.detach().cpu().double().numpy() if W is not None else None
        H = H.detach().cpu().double().numpy() if H is not None else None
        meta = {"image_shape": ds.image_shape, "order": ds.order, "kind": ds.kind, "source": ds.source, "shape": list(X.shape)}
        save_factors(tmp / "factors.npz", factors, config=config, meta=meta)
        report = {
            "name": config["run"]["name"],
            "model": repr(model),
            "data": meta,
            "seconds": elapsed,
            "versions": environment(config["run"]["device"]),
            "torchnmf_l1": __version__,
            "config": config,
        }
        if result is not None and hasattr(result, "objective"):
            report.update(
                solver=result.solver, n_iter=result.n_iter, converged=result.converged, message=result.message,
                objective=list(result.objective), iterations=list(result.iterations), times=list(result.times),
            )
        if W is not None and H is not None and W.ndim == 2 and H.ndim == 2:
            report["relative_error"] = _relative_error(X, W, H)
        report["figures"] = _figures(tmp / "figures", ds, W, H, result, config) if figures and config["output"]["figures"] else []
        write_report(tmp / "report.json", report)
    return report


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"torchnmf-l1: {category.__name__}: {message}", file=sys.stderr)


def _cmd_run(args) -> int:
    from .config import load_config

    config = load_config(args.config, _overrides(args))
    output = config["run"]["output"] or str(Path("runs") / config["run"]["name"])
    quiet = args.quiet or args.quiet_run
    with warnings.catch_warnings():
        # warnings (e.g. ConvergenceWarning) as one line each, without the source line
        warnings.showwarning = _one_line_warning
        report = run_config(config, output, progress=not quiet, figures=not args.no_figures, overwrite=args.overwrite)
    if not quiet:
        err = report.get("relative_error")
        line = f"{report['name']}: {report.get('message', 'done')} in {report['seconds']:.2f}s"
        if err is not None:
            line += f", relative error {err:.4g}"
        print(f"{line}; wrote {Path(output).resolve()}")
    return EXIT_OK


# ---------------------------------------------------------------------------- info, list
def describe(path, key=None) -> dict:
    """Shape, kind, dtype, sparsity, nonnegativity, min/max and memory of a data file."""
    import scipy.sparse

    from .io import load_data

    ds = load_data(path, key=key)
    X = ds.X
    m, n = X.shape[0], int(np.prod(X.shape[1:]))
    if scipy.sparse.issparse(X):
        values = X.data
        nnz = int(X.nnz)
        memory = int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
        stored = "sparse " + X.format
    else:
        values = np.asarray(X)
        nnz = int(np.count_nonzero(values))
        memory = int(values.nbytes)
        stored = "dense"
    finite = bool(np.isfinite(values).all()) if values.size else True
    vmin = float(values.min()) if values.size else 0.0
    vmax = float(values.max()) if values.size else 0.0
    if scipy.sparse.issparse(X) and nnz < m * n:
        vmin = min(vmin, 0.0)
    return {
        "file": str(path), "variable": ds.meta.get("variable"), "kind": ds.kind, "shape": list(X.shape),
        "image_shape": list(ds.image_shape) if ds.image_shape else None, "storage": stored,
        "dtype": str(X.dtype), "nnz": nnz, "density": nnz / max(m * n, 1), "min": vmin, "max": vmax,
        "finite": finite, "nonnegative": bool(vmin >= 0), "memory_bytes": memory,
    }


def _human(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return ""


def _cmd_info(args) -> int:
    d = describe(args.file, args.key)
    if args.json:
        print(json.dumps(d, indent=2))
        return EXIT_OK
    print(f"file         {d['file']}" + (f" (variable {d['variable']})" if d["variable"] else ""))
    print(f"shape        {' x '.join(map(str, d['shape']))} ({d['kind']}, {d['storage']}, {d['dtype']})")
    if d["image_shape"]:
        print(f"image shape  {' x '.join(map(str, d['image_shape']))}")
    print(f"nonzeros     {d['nnz']} (density {d['density']:.4g})")
    print(f"range        [{d['min']:.6g}, {d['max']:.6g}]; nonnegative: {'yes' if d['nonnegative'] else 'NO'}; finite: {'yes' if d['finite'] else 'NO'}")
    print(f"memory       {_human(d['memory_bytes'])}")
    return EXIT_OK


def catalogue() -> dict:
    """Models (available or not), their solvers with losses and options, losses, inits."""
    import torchnmf_l1
    from .config import MODELS
    from .problem import _LOSS_FUNCTIONS
    from .registry import available_inits, available_solvers, get_solver

    models = {}
    for name, (attr, key) in MODELS.items():
        solvers = {}
        for s in available_solvers(key):
            cls = get_solver(s, family=key)
            solvers[s] = {
                "losses": sorted(getattr(cls, "losses", ())),
                "options": {k: getattr(v, "default", v) for k, v in dict(getattr(cls, "options", {})).items()},
                "sparse": bool(getattr(cls, "supports_sparse", False)),
            }
        models[name] = {"class": attr, "available": getattr(torchnmf_l1, attr, None) is not None, "solvers": solvers}
    return {"models": models, "losses": sorted(_LOSS_FUNCTIONS), "inits": available_inits()}


def _cmd_list(args) -> int:
    cat = catalogue()
    if args.json:
        print(json.dumps(cat, indent=2, default=str))
        return EXIT_OK
    print("models:")
    for name, m in cat["models"].items():
        status = "" if m["available"] else "  (not in this version)"
        print(f"  {name:<14} torchnmf_l1.{m['class']}{status}")
        for s, info in m["solvers"].items():
            opts = ", ".join(f"{k}={v}" for k, v in info["options"].items())
            print(f"      solver {s:<8} losses: {', '.join(info['losses']) or '-'}"
                  f"; sparse: {'yes' if info['sparse'] else 'no'}" + (f"; options: {opts}" if opts else ""))
    print(f"losses: {', '.join(cat['losses'])}")
    print(f"inits:  {', '.join(cat['inits'])}")
    return EXIT_OK


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    """Entry point of ``torchnmf-l1``; returns the exit status (0, 1 or 2)."""
    from .config import ConfigError
    from .io import DataError

    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    commands = {"run": _cmd_run, "info": _cmd_info, "list": _cmd_list}
    try:
        return commands[args.command](args)
    except (ConfigError, DataError, UsageError, FileExistsError) as err:
        print(f"torchnmf-l1: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("torchnmf-l1: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # anything else: one line, traceback with --debug
        if args.debug:
            raise
        print(f"torchnmf-l1: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
