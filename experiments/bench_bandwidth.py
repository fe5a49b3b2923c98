"""Benchmark: large dense NMF iterations against the memory-bandwidth bound of this device.

For X of 200 x n float32 (n = 1e5 and 1e6 by default; ``--n``), r = 10, on ``--device``:

* the device's memory bandwidth, measured in the same run by a STREAM-like triad
  ``a = b + s c`` on buffers far larger than the caches (bytes moved: 3 buffers);
* per solver, the time of one iteration (median of a few, after a warm-up) against the
  bytes one iteration must move, the bound ``bytes / bandwidth``, and their ratio
  (1 = at the bound). Bytes counted per iteration, X being m x n of s bytes each:

  - ``hals`` (Frobenius): X is read twice, for ``X H^T`` and for ``W^T X``: 2 m n s
    (the factors and the r x r Grams are negligible at r << m, n);
  - ``mu`` (Frobenius): the same two products, 2 m n s;
  - ``mu`` (KL): per factor update, WH is written, X and WH are read to form X / WH (written),
    which is read by the product: 5 m n s per factor, 10 m n s per iteration;

* the setup time (data preparation, initialisation) plus the first iteration, and the
  peak memory against the data's size (CUDA: ``max_memory_allocated``; CPU: the growth of
  the resident set, from ``getrusage``).

``--peers`` adds scikit-learn's CD on the CPU at the same thread count (one process).
Writes ``experiments/results/bench_bandwidth_<device>.json`` (or ``--output``).
Run: ``python experiments/bench_bandwidth.py`` (CPU, a few minutes) or ``--device cuda``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import machine, write  # noqa: E402
from torchnmf_l1.data import prepare_data  # noqa: E402
from torchnmf_l1.init import initialize, make_generator  # noqa: E402
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402

BYTES_PER_ITERATION = {  # in units of m n s (see the module docstring)
    ("hals", "frobenius"): 2,
    ("mu", "frobenius"): 2,
    ("mu", "kl"): 10,
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def triad_bandwidth(device, dtype, elements) -> float:
    """Bytes per second of a = b + s c over buffers of ``elements`` entries (best of 10)."""
    b = torch.rand(elements, device=device, dtype=dtype)
    c = torch.rand(elements, device=device, dtype=dtype)
    a = torch.empty_like(b)
    best = float("inf")
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        torch.add(b, c, alpha=1.5, out=a)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 3 * elements * b.element_size() / best


def rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(solver_name, loss, X, rank, device, iterations, threads):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    rss0 = rss_bytes()
    sync(device)
    start = time.perf_counter()
    data = prepare_data(X)
    problem = NMFProblem(data, resolve_loss(loss))
    W, H = initialize(data, rank, "random", generator=make_generator(0, device))
    solver = get_solver(solver_name)(problem, FactorState(W, H))
    with torch.no_grad():
        solver.step()
        sync(device)
        setup_first = time.perf_counter() - start
        times = []
        for _ in range(iterations):
            sync(device)
            t = time.perf_counter()
            solver.step()
            sync(device)
            times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else max(rss_bytes() - rss0, 0)
    return dict(setup_plus_first_iteration=setup_first, seconds_per_iteration=statistics.median(times),
                peak_memory_bytes=peak)


def sklearn_cd(X: np.ndarray, rank: int, iterations: int):
    from sklearn.decomposition import non_negative_factorization

    rng = np.random.default_rng(0)
    scale = np.sqrt(X.mean() / rank)
    W0 = (rng.random((X.shape[0], rank)) * scale).astype(X.dtype)
    H0 = (rng.random((rank, X.shape[1])) * scale).astype(X.dtype)
    rss0 = rss_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        non_negative_factorization(X, W=W0, H=H0, n_components=rank, init="custom", solver="cd", tol=0, max_iter=1)
        first = time.perf_counter() - start
        start = time.perf_counter()
        non_negative_factorization(X, W=W0, H=H0, n_components=rank, init="custom", solver="cd", tol=0,
                                   max_iter=iterations + 1)
        total = time.perf_counter() - start
    return dict(setup_plus_first_iteration=first, seconds_per_iteration=(total - first) / iterations,
                peak_memory_bytes=max(rss_bytes() - rss0, 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--m", type=int, default=200)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", action="store_true", help="also scikit-learn's CD (CPU)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float32
    triad_elements = (1 << 28) if device.type == "cuda" else (1 << 26)
    bandwidth = triad_bandwidth(device, dtype, triad_elements)
    print(f"{device}: triad bandwidth {bandwidth / 1e9:.1f} GB/s", flush=True)
    rows = []
    for n in (int(v) for v in args.n):
        g = torch.Generator(device=device).manual_seed(0)
        X = torch.rand(args.m, args.rank, device=device, dtype=dtype, generator=g) @ torch.rand(
            args.rank, n, device=device, dtype=dtype, generator=g)
        X.add_(0.01)
        data_bytes = X.numel() * X.element_size()
        for (solver, loss), units in BYTES_PER_ITERATION.items():
            row = measure(solver, loss, X, args.rank, device, args.iterations, args.threads)
            moved = units * data_bytes
            bound = moved / bandwidth
            row.update(method=f"torchnmf_l1 {solver} ({loss})", m=args.m, n=n, rank=args.rank, bytes_per_iteration=moved,
                       bound_seconds=bound, bound_over_time=bound / row["seconds_per_iteration"],
                       peak_over_data=row["peak_memory_bytes"] / data_bytes)
            rows.append(row)
            print(f"n={n:>8} {row['method']:28s} {row['seconds_per_iteration'] * 1e3:9.2f} ms/it  bound "
                  f"{bound * 1e3:8.2f} ms ({row['bound_over_time']:.2f} of it)  setup+1st "
                  f"{row['setup_plus_first_iteration']:.2f} s  peak/data {row['peak_over_data']:.2f}", flush=True)
        if args.peers and device.type == "cpu":
            row = sklearn_cd(X.numpy(), args.rank, max(2, args.iterations // 2))
            row.update(method="sklearn cd", m=args.m, n=n, rank=args.rank, peak_over_data=row["peak_memory_bytes"] / data_bytes)
            rows.append(row)
            print(f"n={n:>8} {'sklearn cd':28s} {row['seconds_per_iteration'] * 1e3:9.2f} ms/it  setup+1st "
                  f"{row['setup_plus_first_iteration']:.2f} s", flush=True)
        del X
    info = machine(args.threads)
    info["device"] = str(device)
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    payload = dict(machine=info, triad_bandwidth_bytes_per_s=bandwidth, dtype=str(dtype), rows=rows,
                   bytes_model={f"{s} ({l})": f"{u} m n s" for (s, l), u in BYTES_PER_ITERATION.items()})
    path = write(args.output or f"bench_bandwidth_{device.type}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
