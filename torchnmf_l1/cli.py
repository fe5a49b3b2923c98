"""Command line: ``torchnmf-l1`` (or ``python -m torchnmf_l1``).

Commands
--------
``run CONFIG.toml``
    Fit the model of a run config (see :mod:`torchnmf_l1.config`; every model: ``nmf``,
    ``separable``, ``dictionary``, ``cp``, ``dictionary_cp``, ``streaming``) and write, into
    the output folder, ``factors.npz``, ``report.json`` and ``figures/*.png``. Flags
    override config keys: ``--device``, ``--dtype``, ``--rank``, ``--seed``, ``--solver``,
    ``--max-iter``, ``--tol``, ``--output`` and any ``--set section.key=value``.
``info FILE``
    Shape, sparsity, nonnegativity and memory of a data file, and its variables.
``list``
    Every model with its keys (its hyperparameter table) and its solvers (losses,
    options), the losses and the initialisations.

A progress bar is drawn on a terminal (``--progress`` forces it, ``--quiet`` hides it).
Exit status: 0 success; 2 bad config, bad input or bad arguments (one line naming the
key or file); 1 anything else (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
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


def _version() -> str:
    from . import __version__

    return __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchnmf-l1", description="GPU-accelerated NMF on PyTorch.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar, no summary")
    parser.add_argument("--progress", action="store_true", help="draw the progress bar even when not on a terminal")
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
                     help="override any config key (value in TOML syntax; null for None); repeatable")
    run.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    run.add_argument("--no-figures", action="store_true", help="write no figures")
    run.add_argument("--quiet", "-q", action="store_true", dest="quiet_run", help=argparse.SUPPRESS)
    run.add_argument("--progress", action="store_true", dest="progress_run", help=argparse.SUPPRESS)

    sweep = sub.add_parser("sweep", help="rank selection: replicates at each rank of a run config's [sweep] table")
    sweep.add_argument("config", help="run config with model.name = 'nmf' and a [sweep] table (ranks = [...])")
    sweep.add_argument("--ranks", type=int, nargs="+", help="override sweep.ranks")
    sweep.add_argument("--replicates", type=int, dest="n_replicates", help="override sweep.n_replicates")
    sweep.add_argument("--output", "-o", help="override run.output (the folder written)")
    sweep.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override any config key (value in TOML syntax); repeatable")
    sweep.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    sweep.add_argument("--no-figures", action="store_true", help="write no figure")

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


def _synthetic_matrix(data: dict, dtype):
    rng = np.random.default_rng(data["data_seed"])
    W0 = rng.random((data["m"], data["true_rank"]))
    H0 = rng.random((data["true_rank"], data["n"]))
    return (W0 @ H0 + data["noise"] * rng.random((data["m"], data["n"]))).astype(dtype)


def _synthetic_tensor(data: dict, dtype):
    rng = np.random.default_rng(data["data_seed"])
    shape = tuple(data["shape"] or (20, 25, 30))
    factors = [rng.random((s, data["true_rank"])) for s in shape]
    letters = "abcdefgh"[: len(shape)]
    T = np.einsum(",".join(f"{c}z" for c in letters) + "->" + letters, *factors)
    return (T + data["noise"] * rng.random(shape)).astype(dtype)


def _load_data(config: dict):
    """The Dataset of config['data'] (X as ndarray, CSR, memory-mapped array or, for CP, a tensor)."""
    import scipy.sparse

    from .config import TENSOR_MODELS
    from .io import Dataset, load_data, load_tensor

    data, name = config["data"], config["model"]["name"]
    dtype = np.float64 if config["run"]["dtype"] == "float64" else np.float32
    if name in TENSOR_MODELS:
        T = _synthetic_tensor(data, dtype) if data["synthetic"] else load_tensor(data["path"], key=data["key"]).astype(dtype)
        if T.ndim == 2 and data["image_shape"] is not None:  # bands x pixels: the (bands, rows, cols) cube
            rows, cols = data["image_shape"]
            if rows * cols != T.shape[1]:
                raise _config_error(f"data.image_shape {data['image_shape']} does not fit the {T.shape[1]} columns of the data")
            T = T.reshape(T.shape[0], rows, cols, order=data["order"] or "C")
        return Dataset(T, source="synthetic" if data["synthetic"] else data["path"], kind="tensor")
    if data["synthetic"]:
        ds = Dataset(_synthetic_matrix(data, dtype), source="synthetic")
        if data["image_shape"] is not None:
            rows, cols = data["image_shape"]
            ds.image_shape = (rows, cols)
            ds.kind = "cube" if rows * cols == ds.X.shape[1] else "images" if rows * cols == ds.X.shape[0] else "matrix"
    else:
        ds = load_data(data["path"], key=data["key"], image_shape=data["image_shape"], order=data["order"])
    X = ds.X
    if scipy.sparse.issparse(X):
        X = X.tocsr().astype(dtype)
    elif name != "streaming":  # a streamed matrix stays where it is (a memory map is read block by block)
        X = np.asarray(X, dtype=dtype)
    if X.ndim != 2:
        raise UsageError(f"{ds.source}: data must be a matrix, got an array of shape {X.shape}")
    if data["transpose"]:
        X = X.T.tocsr() if scipy.sparse.issparse(X) else np.ascontiguousarray(X.T)
        ds.kind = {"cube": "images", "images": "cube"}.get(ds.kind, ds.kind)
    ds.X = X
    return ds


def _dictionary(reference, ds, config: dict):
    """The dictionary of a config: "self" (X, e.g. the image as its own dictionary), or a file."""
    from .config import ConfigError
    from .io import load_data

    if reference == "self":
        if not isinstance(ds.X, np.ndarray):
            raise ConfigError("model.dictionary = \"self\" needs a dense X")
        if ds.X.ndim > 2:  # a tensor: the fibers of the constrained mode are the atoms
            mode = config["model"].get("mode", 0) % ds.X.ndim
            return np.moveaxis(ds.X, mode, 0).reshape(ds.X.shape[mode], -1)
        return ds.X
    path, key = (reference, None) if isinstance(reference, str) else (reference["path"], reference.get("key"))
    D = load_data(path, key=key).X
    return np.asarray(D.toarray() if hasattr(D, "toarray") else D, dtype=ds.X.dtype)


def _build_model(config: dict, ds):
    import torch

    from .config import ConfigError, get_model_class

    model_cfg, run_cfg = config["model"], config["run"]
    cls = get_model_class(model_cfg["name"])
    shape = ds.X.shape
    rank = model_cfg.get("rank")
    if rank is not None and len(shape) == 2 and rank > min(shape):
        raise ConfigError(f"model.rank = {rank} is too large: it must be <= min(m, n) = {min(shape)} for data of shape {tuple(shape)}")
    device = run_cfg["device"]
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device = {device!r}: CUDA is not available on this machine; use 'cpu'")
    kwargs = {k: v for k, v in model_cfg.items() if k not in ("name", "options", "rank")}
    if "dictionary" in kwargs:
        if kwargs["dictionary"] is None:
            raise ConfigError("missing required key model.dictionary (\"self\", a file, or {path = ..., key = ...})")
        kwargs["dictionary"] = _dictionary(kwargs["dictionary"], ds, config)
    kwargs.update(model_cfg["options"])
    kwargs["device"] = device
    kwargs["dtype"] = getattr(torch, run_cfg["dtype"])
    try:
        return cls(rank, **kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[model]: {err}") from None


def _fit_kwargs(config: dict, progress: bool) -> dict:
    from .config import fit_schema

    kwargs = {k: v for k, v in config["fit"].items() if k in fit_schema(config["model"]["name"])}
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "threads"}
    kwargs["progress"] = progress
    return kwargs


def _factors(model) -> dict:
    """Every tensor the model holds (its state dict), and W, H, indices where it has them."""
    out = dict(model.state_dict())
    for name in ("W", "H", "indices"):
        if name not in out:
            try:
                value = getattr(model, name)
            except (AttributeError, ValueError):
                continue
            if value is not None and hasattr(value, "detach") and value.numel():
                out[name] = value
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


def _planned_plots(config: dict, ds) -> list[str]:
    """The figures this run will draw, checked against the data and the model before any fit."""
    from .config import TENSOR_MODELS

    wanted = config["output"]["plots"]
    tensor = config["model"]["name"] in TENSOR_MODELS
    if wanted is None:
        wanted = ["convergence"]
        if not tensor and ds.kind == "cube" and ds.image_shape is not None:
            wanted += ["abundances", "spectra"]
        elif not tensor and ds.kind == "images" and ds.image_shape is not None:
            wanted += ["basis"]
        if config["data"]["vocabulary"] is not None and not tensor:
            wanted += ["words"]
        return wanted
    for name in wanted:
        if name == "convergence":
            continue
        if tensor:
            raise _config_error(f"output.plots: {name!r} draws a matrix factorization; a {config['model']['name']} model "
                                f"draws only 'convergence'")
        m, n = ds.X.shape
        if name == "abundances" and (ds.image_shape is None or ds.image_shape[0] * ds.image_shape[1] != n):
            raise _config_error(f"output.plots: 'abundances' needs data.image_shape with rows * cols = n = {n} "
                                f"(the pixels are the columns), got {ds.image_shape}")
        if name == "basis" and (ds.image_shape is None or ds.image_shape[0] * ds.image_shape[1] != m):
            raise _config_error(f"output.plots: 'basis' needs data.image_shape with rows * cols = m = {m} "
                                f"(each column an image), got {ds.image_shape}")
        if name == "words" and config["data"]["vocabulary"] is None:
            raise _config_error("output.plots: 'words' needs data.vocabulary (a file of words, one per row of X)")
    return list(wanted)


def _figures(folder: Path, ds, W, H, result, config: dict, wanted: list[str]) -> list[str]:
    from .io import plots

    folder.mkdir()
    written = []
    for name in wanted:
        path = folder / f"{name}.png"
        if name == "convergence":
            if result is None or not getattr(result, "objective", None):
                continue
            plots.plot_convergence(result.iterations, result.objective, path, title=f"{result.solver}: objective")
        elif name == "abundances":  # in X's units: the spectra scaled to max 1, H the other way
            plots.plot_abundances(plots.normalise_endmembers(W, H)[1], ds.image_shape, path, order=ds.order)
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


def _numpy(t):
    return t.detach().cpu().double().numpy() if t is not None else None


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
    ds = _load_data(config)
    model = _build_model(config, ds)
    fit_kwargs = _fit_kwargs(config, progress)
    draw = figures and config["output"]["figures"]
    if draw and not have_matplotlib():
        raise _config_error("output.figures = true needs matplotlib (pip install 'torchnmf-l1[plot]'); set it to false or pass --no-figures")
    wanted = _planned_plots(config, ds) if draw else []
    X = ds.X
    with atomic_directory(output, overwrite=overwrite) as tmp:
        start = time.perf_counter()
        try:
            result = model.fit(X, **fit_kwargs)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{ds.source}: {err}") from None
        elapsed = time.perf_counter() - start
        factors = _factors(model)
        W, H = _numpy(factors.get("W")), _numpy(factors.get("H"))
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
        if W is not None and H is not None and W.ndim == 2 and H.ndim == 2 and H.shape[1] == X.shape[1]:
            report["relative_error"] = _relative_error(X, W, H)
        elif result is not None and "relative_error" in result.extra:
            report["relative_error"] = result.extra["relative_error"]
        report["figures"] = _figures(tmp / "figures", ds, W, H, result, config, wanted) if draw else []
        write_report(tmp / "report.json", report)
    return report


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"torchnmf-l1: {category.__name__}: {message}", file=sys.stderr)


def _cmd_run(args) -> int:
    from .config import load_config

    config = load_config(args.config, _overrides(args))
    output = config["run"]["output"] or str(Path("runs") / config["run"]["name"])
    quiet = args.quiet or args.quiet_run
    progress = not quiet and (args.progress or args.progress_run or sys.stderr.isatty())
    with warnings.catch_warnings():
        # warnings (e.g. ConvergenceWarning) as one line each, without the source line
        warnings.showwarning = _one_line_warning
        report = run_config(config, output, progress=progress, figures=not args.no_figures, overwrite=args.overwrite)
    if not quiet:
        err = report.get("relative_error")
        line = f"{report['name']}: {report.get('message', 'done')} in {report['seconds']:.2f}s"
        if isinstance(err, float):
            line += f", relative error {err:.4g}"
        print(f"{line}; wrote {Path(output).resolve()}")
    return EXIT_OK


def sweep_config(config: dict, output, *, figures: bool = True, overwrite: bool = False) -> dict:
    """Run :func:`torchnmf_l1.sweep.rank_sweep` on a validated config's data; write sweep.json
    (one row per rank, every replicate's objective), consensus.npz (W_r, H_r of each rank's
    consensus) and figures/rank_sweep.png into ``output``. Returns the report."""
    import scipy.sparse
    import torch

    from .io.outputs import atomic_directory, environment, write_report
    from .io.plots import have_matplotlib, plot_rank_sweep
    from .sweep import rank_sweep

    model, sweep = config["model"], config["sweep"]
    if model["name"] != "nmf":
        raise _config_error(f"torchnmf-l1 sweep fits NMF replicates: model.name must be 'nmf', got {model['name']!r}")
    if sweep["ranks"] is None:
        raise _config_error("torchnmf-l1 sweep needs sweep.ranks = [...] in the config (or --ranks 2 3 4)")
    draw = figures and config["output"]["figures"]
    if draw and not have_matplotlib():
        raise _config_error("output.figures = true needs matplotlib (pip install 'torchnmf-l1[plot]'); set it to false or pass --no-figures")
    if config["run"]["threads"] is not None:
        torch.set_num_threads(config["run"]["threads"])
    ds = _load_data(config)
    X = ds.X.toarray() if scipy.sparse.issparse(ds.X) else ds.X
    dtype = torch.float64 if config["run"]["dtype"] == "float64" else torch.float32
    X = torch.as_tensor(np.asarray(X), dtype=dtype, device=config["run"]["device"])
    options = {k: model[k] for k in ("loss", "beta", "zero_weight", "solver", "init", "l1_reg_W", "l2_reg_W", "l1_reg_H",
                                     "l2_reg_H") if model.get(k) is not None}
    options.update(model["options"])
    fit = config["fit"]
    with atomic_directory(output, overwrite=overwrite) as tmp:
        start = time.perf_counter()
        try:
            result = rank_sweep(X, sweep["ranks"], sweep["n_replicates"], holdout=float(sweep["holdout"]),
                                seed=sweep["seed"], max_iter=fit["max_iter"] or 500, tol=fit["tol"] if fit["tol"] is not None else 1e-5,
                                dtype=dtype, **options)
        except (ValueError, TypeError) as err:
            raise UsageError(f"{ds.source}: {err}") from None
        report = {"name": config["run"]["name"], "data": {"source": ds.source, "shape": list(X.shape)},
                  "seconds": time.perf_counter() - start, "sweep": dict(sweep), "table": result.table(),
                  "objectives": {r.rank: r.objectives for r in result.results},
                  "versions": environment(config["run"]["device"]), "config": config}
        np.savez(tmp / "consensus.npz", **{f"W_{r.rank}": _numpy(r.consensus_W) for r in result.results},
                 **{f"H_{r.rank}": _numpy(r.consensus_H) for r in result.results})
        report["figures"] = []
        if draw:
            (tmp / "figures").mkdir()
            plot_rank_sweep(result, tmp / "figures" / "rank_sweep.png", title=f"{config['run']['name']}: rank selection")
            report["figures"] = ["figures/rank_sweep.png"]
        write_report(tmp / "sweep.json", report)
    return report


def _cmd_sweep(args) -> int:
    from .config import load_config

    overrides = list(args.set)
    if args.ranks:
        overrides.append(f"sweep.ranks={json.dumps(args.ranks)}")
    if args.n_replicates is not None:
        overrides.append(f"sweep.n_replicates={args.n_replicates}")
    if args.output is not None:
        overrides.append(f"run.output={json.dumps(args.output)}")
    config = load_config(args.config, overrides)
    output = config["run"]["output"] or str(Path("runs") / (config["run"]["name"] + "-sweep"))
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        report = sweep_config(config, output, figures=not args.no_figures, overwrite=args.overwrite)
    if not args.quiet:
        print(f"{'rank':>5} {'best error':>11} {'held out':>9} {'silhouette':>10} {'cophenetic':>10}")
        for row in report["table"]:
            held = "-" if row["held_out_error"] is None else f"{row['held_out_error']:.4g}"
            print(f"{row['rank']:>5} {row['best_error']:>11.4g} {held:>9} {row['silhouette']:>10.3f} {row['cophenetic']:>10.3f}")
        print(f"{report['name']}: {len(report['table'])} ranks in {report['seconds']:.2f}s; wrote {Path(output).resolve()}")
    return EXIT_OK


# ---------------------------------------------------------------------------- info, list
def describe(path, key=None) -> dict:
    """Shape, kind, dtype, sparsity, nonnegativity, min/max and memory of a data file, and its variables."""
    import scipy.sparse

    from .io import list_variables, load_data

    variables = list_variables(path) if Path(path).suffix.lower() in (".npz", ".mat") else None
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
        "finite": finite, "nonnegative": bool(vmin >= 0), "memory_bytes": memory, "variables": variables,
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
    for v in d["variables"] or ():
        print(f"variable     {v['name']:<16} {' x '.join(map(str, v['shape'])) or 'scalar':<16} {v['dtype']}"
              + (" (sparse)" if v["sparse"] else ""))
    return EXIT_OK


def catalogue() -> dict:
    """Every model with its config keys (its hyperparameter table) and its solvers, losses, inits."""
    from .config import MODELS, fit_schema, get_model_class
    from .problem import LOSS_NAMES
    from .registry import available_inits, available_solvers, get_solver

    models = {}
    for name, attr in MODELS.items():
        cls = get_model_class(name)
        family = cls.solver_family
        solvers = {}
        for s in available_solvers(family):
            solver_cls = get_solver(s, family=family)
            solvers[s] = {
                "losses": sorted(getattr(solver_cls, "losses", ())),
                "options": {k: v.default for k, v in solver_cls.options.items()},
                "sparse": bool(getattr(solver_cls, "supports_sparse", False)),
            }
        keys = {k: {"default": p.default, "allowed": p.constraint.description if p.constraint else "any value",
                    "required": p.required, "doc": p.doc} for k, p in cls.hyperparameters.items()}
        models[name] = {"class": attr, "family": family, "keys": keys, "fit": sorted(fit_schema(name)), "solvers": solvers}
    return {"models": models, "losses": list(LOSS_NAMES), "inits": available_inits(), "cp_inits": available_inits("cp")}


def _cmd_list(args) -> int:
    cat = catalogue()
    if args.json:
        print(json.dumps(cat, indent=2, default=str))
        return EXIT_OK
    print("models ([model] name = ...; keys of [model], then its solvers):")
    for name, m in cat["models"].items():
        print(f"  {name:<14} torchnmf_l1.{m['class']}")
        for key, info in m["keys"].items():
            default = "required" if info["required"] else f"default {info['default']!r}"
            print(f"      {key:<16} {default}; {info['allowed']}")
        for s, info in m["solvers"].items():
            opts = ", ".join(f"{k}={v}" for k, v in info["options"].items())
            losses = f"losses: {', '.join(info['losses'])}; " if info["losses"] else ""
            print(f"      solver {s:<10} {losses}sparse: {'yes' if info['sparse'] else 'no'}" + (f"; options: {opts}" if opts else ""))
    print(f"losses: {', '.join(cat['losses'])}")
    print(f"inits:  {', '.join(cat['inits'])} (CP: {', '.join(cat['cp_inits'])})")
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
    commands = {"run": _cmd_run, "sweep": _cmd_sweep, "info": _cmd_info, "list": _cmd_list}
    try:
        return commands[args.command](args)
    except (ConfigError, DataError, UsageError, FileExistsError) as err:
        print(f"torchnmf-l1: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("torchnmf-l1: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (torchnmf-l1 list | head)
        return EXIT_OK
    except Exception as err:  # anything else: one line, traceback with --debug
        if args.debug:
            raise
        print(f"torchnmf-l1: {type(err).__name__}: {err} (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
