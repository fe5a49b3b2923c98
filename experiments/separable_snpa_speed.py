"""SNPA before/after: the kernel of main at 817788d (global stopping rule, every column to the end)
against the current one (per-column Frank-Wolfe-gap stop), Urban r = 6 and 8, 2 threads, same run.

Usage: OMP_WAIT_POLICY=PASSIVE|ACTIVE python experiments/separable_snpa_speed.py
Writes experiments/results/separable_snpa_speed_<policy>.json. Needs git (the old kernel is read
from the commit) and ../shared/data/urban_undersampled4.mat.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from torchnmf_l1 import kernels  # noqa: E402

BEFORE = "817788d"


def main():
    torch.set_num_threads(2)
    source = subprocess.run(["git", "show", f"{BEFORE}:torchnmf_l1/kernels/separable.py"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("snpa_before", f.name)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    M = torch.from_numpy(np.asarray(scipy.io.loadmat(ROOT.parent / "shared" / "data" / "urban_undersampled4.mat")["M"],
                                    dtype=np.float64))
    policy = os.environ.get("OMP_WAIT_POLICY", "default (active)")
    out = {"machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                       "device": "cpu", "omp_wait_policy": policy,
                       "note": "shared 2-core machine, another helper's jobs running: timings contended"},
           "before_commit": BEFORE, "rows": []}
    for rank in (6, 8):
        for rep in range(2):
            for name, fn in (("before", old.snpa), ("after", kernels.snpa)):
                t = time.perf_counter()
                K, H = fn(M, rank)
                seconds = time.perf_counter() - t
                R = M - M[:, K] @ H
                row = dict(rank=rank, kernel=name, rep=rep, seconds=seconds, indices=K.tolist(),
                           residual=float(torch.sum(R * R)), load_average=os.getloadavg())
                out["rows"].append(row)
                print(f"r={rank} {name:6s} rep {rep}: {seconds:7.2f} s  K={row['indices']}", flush=True)
    tag = "passive" if policy.upper() == "PASSIVE" else "active"
    (ROOT / "experiments" / "results" / f"separable_snpa_speed_{tag}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
