"""Benchmark: many small factorizations at once (a batch) against a loop of single fits.

R starts of a 200 x 100 rank-5 problem (X = W H + noise; R = 100 by default), each from its
own random start, fitted by HALS for a fixed number of iterations (tol = 0, so every method
does the same work):

* ``torchnmf_l1 batched``: one ``NMF.fit`` of the (R, m, n) stack (every problem in the same
  kernels, one batched GEMM per product);
* ``torchnmf_l1 replicates``: ``NMF(n_replicates=R).fit`` of the one X, the same starts
  (the factors batched, X shared: no R copies of it);
* ``torchnmf_l1 loop``: R single fits, one after another;
* ``sklearn cd loop``: R ``non_negative_factorization(solver="cd")`` calls (CPU only).

Reports the wall time of each, the ratios, and checks that the batched factors equal the
single fits (max relative difference). Writes ``experiments/results/bench_batched_<device>.json``.
Run: ``python experiments/bench_batched.py`` (about a minute) or ``--device cuda``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import machine, write  # noqa: E402
from torchnmf_l1 import NMF  # noqa: E402


def starts(X, r, count, seed):
    rng = np.random.default_rng(seed)
    scale = np.sqrt(X.mean() / r)
    return [(rng.random((X.shape[0], r)) * scale, rng.random((r, X.shape[1])) * scale) for _ in range(count)]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    m, n, r, R, k = 200, 100, 5, args.replicates, args.iterations
    rng = np.random.default_rng(0)
    X = rng.random((m, r)) @ rng.random((r, n)) + 0.05 * rng.random((m, n))
    S = starts(X, r, R, seed=1)
    Xt = torch.as_tensor(X, device=device)
    W0 = torch.stack([torch.as_tensor(w, device=device) for w, _ in S])
    H0 = torch.stack([torch.as_tensor(h, device=device) for _, h in S])
    options = dict(max_iter=k, tol=0, check_every=k, warn=False)
    rows = {}

    sync(device)
    start = time.perf_counter()
    batched = NMF(r, solver="hals", device=device)
    batched.fit(Xt.expand(R, m, n).contiguous(), W=W0, H=H0, **options)
    sync(device)
    rows["torchnmf_l1 batched"] = time.perf_counter() - start

    # the same R starts as replicates of one shared X (NMF(n_replicates=R)): no R copies of X
    sync(device)
    start = time.perf_counter()
    replicated = NMF(r, solver="hals", n_replicates=R, device=device)
    replicated.fit(Xt, W=W0, H=H0, **options)
    sync(device)
    rows["torchnmf_l1 replicates"] = time.perf_counter() - start

    singles = []
    sync(device)
    start = time.perf_counter()
    for i in range(R):
        model = NMF(r, solver="hals", device=device)
        model.fit(Xt, W=W0[i], H=H0[i], **options)
        singles.append(model)
    sync(device)
    rows["torchnmf_l1 loop"] = time.perf_counter() - start
    diff = max(float(((batched.W[i] @ batched.H[i] - s.W @ s.H).norm() / (s.W @ s.H).norm()).detach()) for i, s in enumerate(singles))
    diff = max(diff, max(float(((replicated.W[i] @ replicated.H[i] - s.W @ s.H).norm() / (s.W @ s.H).norm()).detach())
                         for i, s in enumerate(singles)))

    if device.type == "cpu":
        from sklearn.decomposition import non_negative_factorization

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for w, h in S:
                non_negative_factorization(X, W=w.copy(), H=h.copy(), n_components=r, init="custom", solver="cd",
                                           tol=0, max_iter=k)
        rows["sklearn cd loop"] = time.perf_counter() - start

    for name, seconds in rows.items():
        print(f"{name:22s} {seconds:8.3f} s   {rows['torchnmf_l1 loop'] / seconds:6.2f}x our loop"
              + (f"   {rows['sklearn cd loop'] / seconds:6.2f}x sklearn's loop" if "sklearn cd loop" in rows else ""))
    print(f"batched vs single fits: max relative difference of WH {diff:.2e}")
    info = machine(args.threads)
    info["device"] = str(device)
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    payload = dict(machine=info, problem=dict(m=m, n=n, rank=r, replicates=R, iterations=k), seconds=rows,
                   speedup_over_our_loop=rows["torchnmf_l1 loop"] / rows["torchnmf_l1 batched"],
                   speedup_over_sklearn_loop=(rows["sklearn cd loop"] / rows["torchnmf_l1 batched"]) if "sklearn cd loop" in rows else None,
                   replicates_speedup_over_our_loop=rows["torchnmf_l1 loop"] / rows["torchnmf_l1 replicates"],
                   replicates_speedup_over_sklearn_loop=(rows["sklearn cd loop"] / rows["torchnmf_l1 replicates"])
                   if "sklearn cd loop" in rows else None,
                   batched_vs_single_max_relative_difference=diff)
    path = write(args.output or f"bench_batched_{device.type}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
