"""Shared helpers of the experiment scripts: config loading and machine information."""

from __future__ import annotations

import json
import os
import platform
import tomllib
from pathlib import Path

import sys

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load_config(name: str) -> dict:
    with open(ROOT / "configs" / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


def machine(threads: int) -> dict:
    return dict(
        platform=platform.platform(),
        processor=platform.processor(),
        cpus=os.cpu_count(),
        torch=torch.__version__,
        threads=threads,
        device="cpu",
        load_average=os.getloadavg(),
        note="shared machine, 2 cores contended by several concurrent jobs: timings are noisy",
    )


def write(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
