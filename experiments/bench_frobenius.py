"""Benchmark: Frobenius NMF, relative error against time, this project versus its peers.

In one process and at 2 threads, runs from the same random start (W0, H0):

* torchnmf_l1 accelerated HALS (``hals``) and multiplicative updates (``mu``);
* scikit-learn ``NMF`` solvers ``cd`` and ``mu`` (``non_negative_factorization``
  with ``init="custom"``, ``tol=0``, continued chunk by chunk from the previous
  factors, which is exactly their iteration since neither keeps state besides W, H);
* nmf-torch batch ``halsvar`` and ``mu`` (its model classes, stepped one outer
  iteration at a time);
* torchnmf ``NMF.fit(beta=2)`` (continued chunk by chunk);

on (a) the CBCL face matrix (361 x 2429, r = 49, ``../shared/data/CBCL.mat``; data
generated in code when absent) and (b) a synthetic 2000 x 1500 matrix of rank 20
plus 1 % noise, r = 20. All in float32. The relative error ||X - WH||_F / ||X||_F is
evaluated outside the timed sections. Reports, per data set, the time each method
takes to reach a relative error within 1 % of the best any of them reached, and
the ratio of the fastest peer's time to HALS's time; writes
``experiments/results/bench_frobenius.json``.

On a CUDA machine it also times one iteration of HALS and MU on a 200 x 1,000,000
matrix (r = 20) against the matmul and memory-bandwidth limits measured on the card
(:func:`gpu_large`; not run where there is no GPU).

Run: ``python experiments/bench_frobenius.py`` (about 6 minutes) or ``--quick``.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared, oversubscribed machine a
# spinning team turns every parallel BLAS call into a wait for a descheduled thread
# (measured here: 180 ms instead of 12 ms per HALS iteration on CBCL). Set before torch
# and numpy load, for every method of this process alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io  # noqa: F401  (imported before any timing)
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from torchnmf_l1.data import prepare_data  # noqa: E402
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402

THREADS = 2
DTYPE = np.float32


# ----------------------------------------------------------------------------- data
def load_cbcl():
    path = ROOT.parent / "shared" / "data" / "CBCL.mat"
    if path.exists():
        import scipy.io

        return np.asarray(scipy.io.loadmat(path)["X"], dtype=DTYPE), str(path)
    rng = np.random.default_rng(1)
    X = rng.random((361, 49)) @ rng.random((49, 2429))
    return X.astype(DTYPE), "generated in code (CBCL.mat absent): 361 x 2429 rank-49 product"


def make_synthetic(m=2000, n=1500, r=20, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, r)) @ rng.random((r, n))
    X += noise * X.mean() * rng.standard_normal((m, n))
    return np.maximum(X, 0).astype(DTYPE)


def random_start(X, r, seed=2024):
    rng = np.random.default_rng(seed)
    scale = math.sqrt(X.mean() / r)
    W0 = (rng.random((X.shape[0], r)) * scale).astype(DTYPE)
    H0 = (rng.random((r, X.shape[1])) * scale).astype(DTYPE)
    return W0, H0


# ----------------------------------------------------------------------------- methods
# Each factory returns (advance(k): run k more iterations, factors(): numpy (W, H)).
def ours(solver_name):
    def factory(X, W0, H0):
        data = prepare_data(torch.from_numpy(X))
        problem = NMFProblem(data, resolve_loss("frobenius"))
        solver = get_solver(solver_name)(problem, FactorState(torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())))

        def advance(k):
            with torch.no_grad():
                for _ in range(k):
                    solver.step()

        return advance, lambda: (solver.W.contiguous().numpy(), solver.H.contiguous().numpy())

    return factory


def sklearn_solver(name):
    def factory(X, W0, H0):
        import warnings

        from sklearn.decomposition import non_negative_factorization

        state = {"W": W0.copy(), "H": H0.copy()}

        def advance(k):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                W, H, _ = non_negative_factorization(
                    X, W=state["W"], H=state["H"], n_components=W0.shape[1], init="custom",
                    solver=name, beta_loss="frobenius", tol=0.0, max_iter=k,
                )
            state["W"], state["H"] = W, H

        return advance, lambda: (state["W"], state["H"])

    return factory


def nmf_torch(algo):
    def factory(X, W0, H0):
        from nmf.nmf_models import NMFBatchHALS, NMFBatchMU

        common = dict(
            n_components=W0.shape[1], init="random", beta_loss=2.0, tol=0.0, random_state=0,
            alpha_W=0.0, l1_ratio_W=0.0, alpha_H=0.0, l1_ratio_H=0.0, fp_precision=torch.float32,
            device_type="cpu", n_jobs=THREADS, max_iter=0,
        )
        if algo == "halsvar":
            model = NMFBatchHALS(hals_tol=0.05, hals_max_iter=200, **common)
        else:
            model = NMFBatchMU(**common)
        with contextlib.redirect_stdout(io.StringIO()):
            model.fit(torch.from_numpy(X))  # max_iter=0: sets up X and its caches only
        # nmf-torch factors X (samples x features) ~ H W: its H is our W, its W is our H.
        model.H = torch.from_numpy(W0.copy())
        model.W = torch.from_numpy(H0.copy())
        model._WWT = model.W @ model.W.T
        model._HTH = model.H.T @ model.H
        model._XWT = model.X @ model.W.T

        def advance(k):
            for _ in range(k):
                model._update_H()
                model._update_W()

        return advance, lambda: (model.H.numpy(), model.W.numpy())

    return factory


def torchnmf_fit(X, W0, H0):
    from torchnmf.nmf import NMF as TorchNMF

    model = TorchNMF(X.shape, rank=W0.shape[1])
    V = torch.from_numpy(X)
    with torch.no_grad():  # torchnmf: V ~ H W^T with H (m x r), W (n x r)
        model.H.copy_(torch.from_numpy(W0))
        model.W.copy_(torch.from_numpy(H0.T.copy()))

    def advance(k):
        model.fit(V, beta=2, tol=0.0, max_iter=k)

    return advance, lambda: (model.H.detach().numpy(), model.W.detach().numpy().T)


METHODS = {
    "torchnmf_l1 hals": ours("hals"),
    "torchnmf_l1 mu": ours("mu"),
    "sklearn cd": sklearn_solver("cd"),
    "sklearn mu": sklearn_solver("mu"),
    "nmf-torch halsvar": nmf_torch("halsvar"),
    "nmf-torch mu": nmf_torch("mu"),
    "torchnmf mu": torchnmf_fit,
}


# ----------------------------------------------------------------------------- driver
class Curve:
    """Relative error after 0, 1, 2, 3, 4, 5, 6, 8, 10, ... iterations of one method, with the
    cumulated wall-clock and process CPU time of its own iterations (evaluation not timed)."""

    def __init__(self, factory, X, W0, H0):
        self.X64 = X.astype(np.float64)
        self.norm = float(np.linalg.norm(self.X64))
        wall, cpu = time.perf_counter(), time.process_time()
        self.advance, self.factors = factory(X, W0, H0)
        self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.data = {"iterations": [0], "times": [self.wall], "cpu_times": [self.cpu], "errors": [self.error()]}
        self.done = 0

    def error(self):
        W, H = self.factors()
        return float(np.linalg.norm(self.X64 - W.astype(np.float64) @ H.astype(np.float64)) / self.norm)

    def step(self):
        k = max(1, min(self.done // 4, 10))
        wall, cpu = time.perf_counter(), time.process_time()
        self.advance(k)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.done += k
        for key, value in zip(("iterations", "times", "cpu_times", "errors"), (self.done, self.wall, self.cpu, self.error())):
            self.data[key].append(value)


def run_curves(methods, X, W0, H0, budget):
    """Advance every method in turn, a few iterations at a time, until each has used ``budget``
    seconds: interleaving spreads the load of a shared machine evenly over the methods."""
    curves = {name: Curve(METHODS[name], X, W0, H0) for name in methods}
    active = list(methods)
    while active:
        for name in list(active):
            curves[name].step()
            if curves[name].wall >= budget:
                active.remove(name)
    return {name: c.data for name, c in curves.items()}


def time_to_reach(curve, target, clock="times"):
    for t, e in zip(curve[clock], curve["errors"]):
        if e <= target:
            return t
    return None


def machine_info():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"torch": torch.__version__, "numpy": np.__version__}
    for module in ("sklearn", "nmf", "torchnmf"):
        try:
            versions[module] = getattr(__import__(module), "__version__", "?")
        except ImportError:
            versions[module] = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "versions": versions,
        "load_average_at_start": os.getloadavg(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "note": "shared machine: other jobs (other helpers' tests) ran at the same time, so times are noisy",
    }


def gpu_large(device="cuda", m=200, n=1_000_000, r=20, iterations=20):
    """Time per iteration of HALS and MU on a 200 x 1,000,000 matrix (r = 20, float32) on the GPU,
    against the limits of the card measured in the same run: the products of one iteration
    (X H^T and W^T X: 4 m n r flops at the rate of a large ``torch.mm``), and one read of X
    per product (2 m n 4 bytes at the bandwidth of a large device-to-device copy)."""
    g = torch.Generator(device=device).manual_seed(0)
    X = torch.rand(m, r, device=device, generator=g) @ torch.rand(r, n, device=device, generator=g)

    def timed(fn, repeat):
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeat

    A = torch.rand(4096, 4096, device=device)
    flops = 2 * 4096**3 / timed(lambda: A @ A, 10)
    big = torch.empty(m * n, device=device)
    bandwidth = 2 * big.numel() * 4 / timed(lambda: big.clone(), 10)
    out = {"shape": [m, n], "rank": r, "device": torch.cuda.get_device_name(), "mm_flops_per_s": flops,
           "copy_bytes_per_s": bandwidth, "matmul_bound_s": 4 * m * n * r / flops,
           "bandwidth_bound_s": 2 * m * n * 4 / bandwidth}
    W0 = torch.rand(m, r, device=device, generator=g)
    H0 = torch.rand(r, n, device=device, generator=g)
    problem = NMFProblem(prepare_data(X), resolve_loss("frobenius"))
    for name in ("hals", "mu"):
        solver = get_solver(name)(problem, FactorState(W0.clone(), H0.clone()))
        with torch.no_grad():
            out[f"{name}_s_per_iteration"] = timed(solver.step, iterations)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per method and data set (smoke run)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per method and data set")
    parser.add_argument("--output", default=str(ROOT / "experiments" / "results" / "bench_frobenius.json"))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--datasets", nargs="*", default=["cbcl", "synthetic"], choices=["cbcl", "synthetic"])
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    budget = args.budget if args.budget is not None else (3.0 if args.quick else 25.0)

    cbcl, cbcl_source = load_cbcl()
    datasets = {}
    if "cbcl" in args.datasets:
        datasets["CBCL 361x2429 r=49"] = (cbcl, 49, cbcl_source)
    if "synthetic" in args.datasets:
        datasets["synthetic 2000x1500 r=20"] = (make_synthetic(), 20, "rank-20 uniform product + 1% Gaussian noise, clipped at 0")
    report = {"machine": machine_info(), "threads": THREADS, "dtype": "float32", "budget_s": budget,
              "target": "relative error within 1% of the best reached by any method", "datasets": {}}
    for label, (X, r, source) in datasets.items():
        W0, H0 = random_start(X, r)
        curves = run_curves(args.methods, X, W0, H0, budget)
        for name, c in curves.items():
            print(f"  {label:26s} {name:20s} {c['iterations'][-1]:6d} it  {c['times'][-1]:7.2f} s  "
                  f"rel. error {c['errors'][-1]:.5f}", flush=True)
        best = min(min(c["errors"]) for c in curves.values())
        target = best * 1.01
        entry = {"source": source, "shape": list(X.shape), "rank": r, "best_error": best, "target_error": target}
        for clock, suffix in (("times", ""), ("cpu_times", "_cpu")):
            reach = {name: time_to_reach(c, target, clock) for name, c in curves.items()}
            peers = {k: v for k, v in reach.items() if not k.startswith("torchnmf_l1") and v is not None}
            fastest_peer = min(peers, key=peers.get) if peers else None
            hals = reach.get("torchnmf_l1 hals")
            entry[f"time_to_target{suffix}_s"] = reach
            entry[f"fastest_peer{suffix}"] = fastest_peer
            entry[f"speedup_hals_vs_fastest_peer{suffix}"] = peers[fastest_peer] / hals if (fastest_peer and hals) else None
            if hals and not peers:  # no peer reached the target within its budget: a lower bound
                entry[f"speedup_hals_lower_bound{suffix}"] = min(c[clock][-1] for k, c in curves.items()
                                                                  if not k.startswith("torchnmf_l1")) / hals
        entry["curves"] = curves
        report["datasets"][label] = entry

    print(f"\nWall time (CPU time) in s to reach a relative error within 1% of the best; {THREADS} threads, float32, "
          f"budget {budget:g} s per method (shared machine)")
    labels = list(report["datasets"])
    print(f"{'method':22s}" + "".join(f"{lab:>28s}" for lab in labels))
    for name in args.methods:
        cells = []
        for lab in labels:
            t = report["datasets"][lab]["time_to_target_s"][name]
            c = report["datasets"][lab]["time_to_target_cpu_s"][name]
            cells.append(f"{t:18.3f} ({c:7.3f})" if t is not None else f"{'not reached':>28s}")
        print(f"{name:22s}" + "".join(cells))
    for lab in labels:
        d = report["datasets"][lab]
        ratio, ratio_cpu = d["speedup_hals_vs_fastest_peer"], d["speedup_hals_vs_fastest_peer_cpu"]
        print(f"{lab}: best error {d['best_error']:.5f}; fastest peer {d['fastest_peer']}; "
              f"HALS speed-up over it: {ratio:.2f}x wall, {ratio_cpu or float('nan'):.2f}x CPU time"
              if ratio else f"{lab}: best error {d['best_error']:.5f}; no peer reached the target within its budget: "
              f"HALS speed-up >= {d.get('speedup_hals_lower_bound') or float('nan'):.2f}x wall")
    if torch.cuda.is_available() and not args.quick:
        report["gpu_200x1e6"] = gpu_large()
        print(json.dumps(report["gpu_200x1e6"], indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    main()
