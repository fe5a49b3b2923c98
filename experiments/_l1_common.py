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
