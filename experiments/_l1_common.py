"""Helpers shared by the L1-NMF experiment scripts: config, machine info, results, timing."""

from __future__ import annotations

import json
import os
import platform
import time
import tomllib
from pathlib import Path

import sys

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python experiments/NAME.py` from anywhere
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "experiments" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"


def load_config(name: str, path: str | None = None) -> dict:
    with open(path or ROOT / "configs" / f"{name}.toml", "rb") as fh:
        return tomllib.load(fh)


def machine_info(device: str = "cpu") -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "note": "shared machine: 2 cores contended by several concurrent jobs; timings are noisy and pessimistic",
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
    return info


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


def figure_path(name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{name}.png"


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_steps(solver, iterations: int, device="cpu") -> float:
    """Mean seconds per ``solver.step()`` over ``iterations`` steps."""
    sync(device)
    start = time.perf_counter()
    for _ in range(iterations):
        solver.step()
    sync(device)
    return (time.perf_counter() - start) / iterations


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).rjust(w) for c, w in zip(columns, widths)))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ----------------------------------------------------------------------------- the paper's protocol
# Seraghiti, Gillis et al., "Weighted L1 NMF for data with false zeros", arXiv 2603.29715;
# the settings below are those of its scripts (github.com/giovanniseraghiti/wL1-NMF, tests/).

def paper_start(X, rank: int, seed: int, *, hals_iter: int = 10, tol: float = 1e-6, dtype=torch.float64):
    """The start of the paper's experiments: uniform W, H, least-squares scaled, balanced,
    then ``hals_iter`` Frobenius HALS iterations (``tol``: the early stop of their FroNMF;
    0 for the fixed 10 of Table 7.1). Our ``init="l1-init"``."""
    from torchnmf_l1.data import prepare_data
    from torchnmf_l1.init import l1_init, make_generator

    data = prepare_data(X, dtype=dtype)
    return l1_init(data, rank, generator=make_generator(seed, "cpu"), hals_iter=hals_iter, tol=tol)


def salt_and_pepper(X, p: float, rng):
    """The paper's MNIST noise: a share p of the nonzero pixels set to 0 and a share p of
    the zero pixels set to 1 (exactly floor(p * count) of each, chosen at random)."""
    import numpy as np

    noisy = X.copy()
    on, off = np.flatnonzero(X > 0), np.flatnonzero(X == 0)
    noisy.flat[rng.permutation(on)[: int(p * on.size)]] = 0.0
    noisy.flat[rng.permutation(off)[: int(p * off.size)]] = 1.0
    return noisy


def psnr(clean, approximation) -> float:
    """10 log10(1 / mean squared error), for data in [0, 1]."""
    import numpy as np

    return float(10 * np.log10(1.0 / np.mean((clean - approximation) ** 2)))


def load_mnist(count: int, seed: int):
    """``count`` MNIST digits (784 x count, scaled to [0, 1]) drawn at random from
    ../shared/data/mnist5k.mat, or None when the file is absent."""
    import numpy as np
    import scipy.io

    path = SHARED_DATA / "mnist5k.mat"
    if not path.exists():
        return None
    d = scipy.io.loadmat(path)
    X = np.asarray(d["X"], dtype=np.float64) / 255.0
    columns = np.random.default_rng(seed).permutation(X.shape[1])[:count]
    return X[:, columns], np.asarray(d["labels"]).ravel()[columns]
