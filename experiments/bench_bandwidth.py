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
  - ``mu`` (KL): per factor update X is read once; WH and X / WH are formed in cache-sized
    blocks (``kernels.mu``), so they need not reach memory: 2 m n s per iteration (a solver that
    materialises them moves 10 m n s: WH written, X and WH read, X / WH written and read);

* the setup time (data preparation, initialisation) plus the first iteration, and the
  memory beyond the data at the peak (CUDA: ``max_memory_allocated``; CPU: the peak resident
  set minus the resident set once X exists), as a fraction of X's size.

Every measurement runs in a process of its own (so that peaks and caches do not carry over).
``--peers`` adds scikit-learn's CD and MU (Frobenius, KL) on the CPU at the same thread count
and from the same start. ``--robustness`` repeats ours and scikit-learn's CD at the smallest
n under each OpenMP wait policy (``PASSIVE`` and the runtime's default) on an idle machine and
on one loaded by a second process that keeps a core busy: the shared-machine case of a
notebook or CI job.
Writes ``experiments/results/bench_bandwidth_<device>.json`` (or ``--output``).
Run: ``python experiments/bench_bandwidth.py --peers --robustness`` (CPU, about 10 minutes)
or ``--device cuda``.
"""

from __future__ import annotations

import os

import argparse
import json
import subprocess
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
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402

BYTES_PER_ITERATION = {  # in units of m n s (see the module docstring)
    ("hals", "frobenius"): 2,
    ("mu", "frobenius"): 2,
    ("mu", "kl"): 2,
}
PEERS = {"sklearn cd": ("cd", "frobenius"), "sklearn mu (frobenius)": ("mu", "frobenius"),
         "sklearn mu (kl)": ("mu", "kullback-leibler")}


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


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_now() -> int:
    """The resident set now, after resetting its high-water mark (Linux: ``clear_refs`` 5),
    so that :func:`rss_peak` reads the peak from here on, not the one of the imports."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_bytes("VmRSS")


def rss_peak() -> int:
    return _status_bytes("VmHWM")


def make_data(m, n, rank, device, dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(0)
    X = torch.rand(m, rank, device=device, dtype=dtype, generator=g) @ torch.rand(
        rank, n, device=device, dtype=dtype, generator=g)
    return X.add_(0.01)


def start(X, rank):
    """The same start for every method: uniform in [0, sqrt(mean X / r)) (scikit-learn's scale), seed 0."""
    rng = np.random.default_rng(0)
    scale = float(np.sqrt(X.mean().item() / rank))
    W0 = rng.random((X.shape[0], rank)) * scale
    H0 = rng.random((rank, X.shape[1])) * scale
    return W0, H0


def measure_ours(solver_name, loss, X, rank, device, iterations):
    W0, H0 = start(X, rank)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    rss0 = rss_now()
    sync(device)
    begin = time.perf_counter()
    data = prepare_data(X)
    problem = NMFProblem(data, resolve_loss(loss))
    W = torch.as_tensor(W0, device=device, dtype=X.dtype)
    H = torch.as_tensor(H0, device=device, dtype=X.dtype)
    solver = get_solver(solver_name)(problem, FactorState(W, H))
    with torch.no_grad():
        solver.step()
        sync(device)
        setup_first = time.perf_counter() - begin
        times = []
        for _ in range(iterations):
            sync(device)
            t = time.perf_counter()
            solver.step()
            sync(device)
            times.append(time.perf_counter() - t)
    extra = (torch.cuda.max_memory_allocated(device) - base) if device.type == "cuda" else max(rss_peak() - rss0, 0)
    return dict(setup_plus_first_iteration=setup_first, seconds_per_iteration=statistics.median(times),
                extra_memory_bytes=extra)


def measure_sklearn(solver, beta_loss, X, rank, iterations):
    from sklearn.decomposition import non_negative_factorization

    X = X.numpy()
    W0, H0 = (A.astype(X.dtype) for A in start(torch.from_numpy(X), rank))
    rss0 = rss_now()

    def fit(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            non_negative_factorization(X, W=W0.copy(), H=H0.copy(), n_components=rank, init="custom",
                                       solver=solver, beta_loss=beta_loss, tol=0, max_iter=k)
            return time.perf_counter() - t

    first = min(fit(1), fit(1))
    total = fit(iterations + 1)
    return dict(setup_plus_first_iteration=first, seconds_per_iteration=(total - first) / iterations,
                extra_memory_bytes=max(rss_peak() - rss0, 0))


def child(spec: dict) -> dict:
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    X = make_data(spec["m"], spec["n"], spec["rank"], device)
    if spec["method"] in PEERS:
        solver, loss = PEERS[spec["method"]]
        return measure_sklearn(solver, loss, X, spec["rank"], spec["iterations"])
    return measure_ours(spec["solver"], spec["loss"], X, spec["rank"], device, spec["iterations"])


def run_child(spec: dict, wait_policy: str | None, timeout: float) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    try:
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env, timeout=timeout,
                              capture_output=True, text=True, check=True)
    except subprocess.TimeoutExpired:
        return dict(error=f"did not finish within {timeout:.0f} s")
    except subprocess.CalledProcessError as error:
        return dict(error=error.stderr.strip().splitlines()[-1] if error.stderr.strip() else f"exit {error.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Load:
    """A second process keeping one core busy while the measurement runs (a shared machine)."""

    def __init__(self, active: bool):
        self.active = active

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if self.active else None
        return self

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--m", type=int, default=200)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", action="store_true", help="also scikit-learn's CD and MU (CPU)")
    parser.add_argument("--robustness", action="store_true", help="wait policies x idle / loaded machine")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.float32
    triad_elements = (1 << 28) if device.type == "cuda" else (1 << 26)
    bandwidth = triad_bandwidth(device, dtype, triad_elements)
    print(f"{device}: triad bandwidth {bandwidth / 1e9:.1f} GB/s", flush=True)
    methods = [(f"torchnmf_l1 {s} ({l})", dict(solver=s, loss=l), u) for (s, l), u in BYTES_PER_ITERATION.items()]
    if args.peers and device.type == "cpu":
        methods += [(name, {}, None) for name in PEERS]
    base = dict(device=str(device), m=args.m, rank=args.rank, iterations=args.iterations, threads=args.threads)

    def measure(method, extra, n, policy="PASSIVE", loaded=False):
        spec = dict(base, method=method, n=n, **extra)
        with Load(loaded):
            row = run_child(spec, policy, args.timeout)
        row.update(method=method, m=args.m, n=n, rank=args.rank, omp_wait_policy=policy or "default", loaded=loaded)
        data_bytes = args.m * n * 4
        if "extra_memory_bytes" in row:
            row["extra_memory_over_data"] = row["extra_memory_bytes"] / data_bytes
        return row

    rows, by_n = [], {}
    for n in (int(v) for v in args.n):
        for method, extra, units in methods:
            row = measure(method, extra, n)
            if units is not None and "seconds_per_iteration" in row:
                moved = units * args.m * n * 4
                row.update(bytes_per_iteration=moved, bound_seconds=moved / bandwidth,
                           bound_over_time=moved / bandwidth / row["seconds_per_iteration"])
            rows.append(row)
            by_n.setdefault(n, {})[method] = row
            print_row(row)
        for method, row in by_n[n].items():
            peer = by_n[n].get("sklearn cd")
            if peer and "seconds_per_iteration" in row and "seconds_per_iteration" in peer:
                row["sklearn_cd_over_this_per_iteration"] = peer["seconds_per_iteration"] / row["seconds_per_iteration"]
                row["sklearn_cd_over_this_setup_first"] = (peer["setup_plus_first_iteration"]
                                                           / row["setup_plus_first_iteration"])
    robustness = []
    if args.robustness and device.type == "cpu":
        n = int(min(args.n))
        chosen = [mt for mt in methods if mt[0] in ("torchnmf_l1 hals (frobenius)", "torchnmf_l1 mu (kl)", "sklearn cd")]
        for loaded in (False, True):
            for policy in ("PASSIVE", None):
                for method, extra, _ in chosen:
                    row = measure(method, extra, n, policy, loaded)
                    robustness.append(row)
                    print_row(row)
    info = machine(args.threads)
    info["device"] = str(device)
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    payload = dict(machine=info, triad_bandwidth_bytes_per_s=bandwidth, dtype=str(dtype), rows=rows,
                   robustness=robustness,
                   bytes_model={f"{s} ({l})": f"{u} m n s" for (s, l), u in BYTES_PER_ITERATION.items()})
    path = write(args.output or f"bench_bandwidth_{device.type}", payload)
    print(f"wrote {path}")


def print_row(row):
    head = (f"n={row['n']:>8} {row['method']:28s} {row['omp_wait_policy']:8s} "
            f"{'loaded' if row['loaded'] else 'idle':6s}")
    if "error" in row:
        print(f"{head} {row['error']}", flush=True)
        return
    bound = f"bound {row['bound_seconds'] * 1e3:7.2f} ms ({row['bound_over_time']:.2f} of it)" if "bound_seconds" in row else " " * 29
    print(f"{head} {row['seconds_per_iteration'] * 1e3:9.2f} ms/it  {bound}  setup+1st "
          f"{row['setup_plus_first_iteration']:.2f} s  extra memory/data {row.get('extra_memory_over_data', 0):.2f}",
          flush=True)


if __name__ == "__main__":
    main()
