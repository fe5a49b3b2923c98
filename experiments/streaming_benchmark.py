"""Out-of-core streaming HALS on a large hyperspectral-like cube stored on disk.

Creates (once) a bands x pixels float32 cube as a Fortran-ordered (pixel-major) .npy
under /tmp (never in the repository): rank-10 nonnegative mixture plus 1 % noise. Then
factorises it with StreamingNMF(solver="hals") under a memory budget, timing the first
statistics pass and each outer iteration (one pass over X), and measuring peak memory:

- CPU: peak resident set of the process during the fit (VmHWM of /proc/self/status,
  reset by writing 5 to /proc/self/clear_refs just before the fit) minus the resident
  set at that moment; pages of the mapped file are dropped after each block is copied.
- CUDA: torch.cuda.max_memory_allocated() minus the allocation before the fit; the
  bytes of X read per iteration divided by the card's bandwidth (``--bandwidth-gbs``,
  from the data sheet; not invented here) gives the memory-bandwidth bound.

Usage: python experiments/streaming_benchmark.py --m 200 --n 2000000 --budget 1e9 --passes 2
       [--device cuda --bandwidth-gbs 3350]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from torchnmf_l1.blocks import BlockSource, block_size_for_budget  # noqa: E402
from torchnmf_l1.problem import FactorState, StreamingProblem  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return -1


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return status("VmRSS")


def make_cube(path, m, n, rank=10, chunk=100_000, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.random((m, rank), dtype=np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(m, n), fortran_order=True)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        H = rng.random((rank, b - a), dtype=np.float32)
        block = W @ H
        block += 0.01 * rng.random(block.shape, dtype=np.float32)
        out[:, a:b] = block
    out.flush()
    del out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--m", type=int, default=200)
    p.add_argument("--n", type=int, default=2_000_000)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--budget", type=float, default=1e9)
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bandwidth-gbs", type=float, default=None)
    p.add_argument("--path", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    path = args.path or f"/tmp/torchnmf_l1_cube_{args.m}x{args.n}_f32.npy"
    created = None
    if not os.path.exists(path):
        t = time.perf_counter()
        make_cube(path, args.m, args.n)
        created = time.perf_counter() - t
    X = np.load(path, mmap_mode="r")
    m, n = X.shape
    device = torch.device(args.device)
    dtype = torch.float32
    budget = int(args.budget)
    block_size = block_size_for_budget(budget, m, args.rank, dtype, source_itemsize=4, device_type=device.type)
    g = torch.Generator(device=device).manual_seed(0)
    mean = float(np.asarray(X[:, : min(n, 10_000)]).mean())
    scale = (mean / args.rank) ** 0.5
    W = torch.rand(m, args.rank, generator=g, device=device, dtype=dtype).mul_(scale)
    H = torch.rand(args.rank, n, generator=g, device=device, dtype=dtype).mul_(scale)
    factor_bytes = (W.numel() + H.numel()) * 4
    solver_cls = get_solver("hals", family="streaming")
    if device.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    rss0 = reset_peak()
    t = time.perf_counter()  # building the solver makes the statistics pass
    solver = solver_cls(StreamingProblem(BlockSource(X), block_size, device, dtype), FactorState(W, H))
    objective = [float(solver.objective())]
    stats_pass = time.perf_counter() - t
    times = []
    for _ in range(args.passes):
        t = time.perf_counter()
        solver.step()
        objective.append(float(solver.objective()))
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    peak_host = status("VmHWM") - rss0
    x_bytes = m * n * 4
    norm = 2 * float(solver.norm_x_sq)
    result = {
        "benchmark": "streaming HALS, out of core",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                    "note": "shared 2-core machine, other jobs running: timings are contended"},
        "shape": [m, n], "rank": args.rank, "dtype": "float32", "file_bytes": x_bytes, "cube_path": path,
        "cube_created_seconds": created, "memory_budget": budget, "block_size": block_size,
        "statistics_pass_seconds": stats_pass, "pass_seconds": times,
        "X_read_GBps_per_pass": [x_bytes / s / 1e9 for s in times],
        "relative_error": [max(2 * o / norm, 0.0) ** 0.5 for o in objective],
        "factor_bytes": factor_bytes,
        "peak_host_rss_growth_bytes": peak_host,
        "peak_host_rss_growth_within_budget_plus_factors": peak_host <= budget + factor_bytes,
        "peak_method": "VmHWM after clear_refs=5 minus VmRSS at reset (Linux), whole process",
    }
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
        result["peak_cuda_allocated_bytes"] = peak
        if args.bandwidth_gbs:
            bound = x_bytes / (args.bandwidth_gbs * 1e9)
            result["bandwidth_bound_seconds"] = bound
            result["fraction_of_bandwidth_bound"] = [bound / s for s in times]
    print(f"cube {m} x {n} float32 ({x_bytes / 1e9:.2f} GB), rank {args.rank}, budget {budget / 1e9:.2f} GB, "
          f"block {block_size} columns, device {device}")
    print(f"{'phase':>12} {'seconds':>9} {'GB/s':>7} {'rel. error':>11}")
    print(f"{'statistics':>12} {stats_pass:9.2f} {x_bytes / stats_pass / 1e9:7.2f} {result['relative_error'][0]:11.4f}")
    for i, s in enumerate(times):
        print(f"{'pass ' + str(i + 1):>12} {s:9.2f} {x_bytes / s / 1e9:7.2f} {result['relative_error'][i + 1]:11.4f}")
    print(f"peak host RSS growth {peak_host / 1e9:.3f} GB (budget {budget / 1e9:.2f} GB + factors {factor_bytes / 1e9:.3f} GB)")
    out = args.out or str(Path(__file__).parent / "results" / f"streaming_{device.type}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
