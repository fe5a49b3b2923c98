"""Benchmark: many small factorizations at once (a batch) against a loop of single fits.

R starts of a 200 x 100 rank-5 problem (X = W H + noise; R = 100 by default), each from its
own random start, fitted by HALS for a fixed number of iterations (tol = 0, so every method
does the same work):

* ``torchnmf_l1 batched``: one ``NMF.fit`` of the (R, m, n) stack (every problem in the same
  kernels, one batched GEMM per product);
* ``torchnmf_l1 replicates``: ``NMF(n_replicates=R).fit`` of the one X, the same starts
  (the factors batched, X shared: no R copies of it);
* ``torchnmf_l1 loop``: R single fits, one after another;
* ``sklearn cd loop``: R ``non_negative_factorization(solver="cd")`` calls (on the CPU, also in a
  ``--device cuda`` run when scikit-learn is installed; skipped where it is not).

Reports the wall time of each, the ratios, and checks that the batched factors equal the
single fits (max relative difference).

Then *to the same errors* (the issue's criterion): scikit-learn's CD after ``--iterations``
iterations gives each start a target error; each of our methods runs budgets of
10, 20, ... ``--iterations`` iterations (``tol = 0``), and the table gives, for the share q of
starts whose error is at most scikit-learn's (q = 50, 90, 95, 100 %), the least time of a
budget that reaches it: plain HALS (``beta0=0``, one sweep per factor: scikit-learn's
algorithm), HALS with Ang and Gillis's extrapolation (``beta0=0.5``) and with it the
accelerated inner sweeps (``alpha=0.5``), as replicates (one call) and as a loop of single
fits (the same iterates, so the same errors). Writes
``experiments/results/bench_batched_<device>.json``.
Run: ``python experiments/bench_batched.py`` (a few minutes) or ``--device cuda``.
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
from torchnmf_l1 import NMF, kernels  # noqa: E402


def starts(X, r, count, seed):
    rng = np.random.default_rng(seed)
    scale = np.sqrt(X.mean() / r)
    return [(rng.random((X.shape[0], r)) * scale, rng.random((r, X.shape[1])) * scale) for _ in range(count)]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


SHARES = (0.5, 0.9, 0.95, 1.0)
METHODS = {
    "hals (plain, beta0=0)": dict(beta0=0.0, alpha=0.0),
    "hals extrapolated (beta0=0.5, one sweep)": dict(beta0=0.5, alpha=0.0),
    "hals extrapolated + inner sweeps (beta0=0.5, alpha=0.5)": dict(beta0=0.5, alpha=0.5),
}


def relative_errors(X, model):
    """Per replicate ||X - W_k H_k|| / ||X||, in chunks (kernels.relative_error): no R reconstructions at once."""
    return kernels.relative_error(X, model.W.detach(), model.H.detach()).cpu().double().numpy()


def to_the_same_errors(X, W0, H0, target, max_budget, device, sklearn_seconds, loops=True):
    """For each method and share q: the least time of an iteration budget whose errors are at
    most scikit-learn's in a share q of the starts (replicates in one call, and a loop)."""
    r, R = W0.shape[-1], W0.shape[0]
    budgets = list(range(10, max_budget + 1, 10)) or [max_budget]
    results = {}
    for label, options in METHODS.items():
        curve = []
        for budget in budgets:
            fit_options = dict(max_iter=budget, tol=0, check_every=budget, warn=False)
            sync(device)
            start = time.perf_counter()
            model = NMF(r, solver="hals", n_replicates=R, device=device, **options)
            model.fit(X, W=W0, H=H0, **fit_options)
            sync(device)
            seconds = time.perf_counter() - start
            errors = relative_errors(X, model)
            curve.append(dict(iterations=budget, seconds=seconds, reached=float(np.mean(errors <= target * (1 + 1e-9))),
                              median_error=float(np.median(errors)), best_error=float(errors.min())))
        first = {q: next((c for c in curve if c["reached"] >= q), None) for q in SHARES}
        loop = {}
        for q, point in first.items():  # the loop of single fits at the budget that reached q (once per budget)
            if not loops:
                break
            if point is None or point["iterations"] in loop:
                continue
            fit_options = dict(max_iter=point["iterations"], tol=0, check_every=point["iterations"], warn=False)
            sync(device)
            start = time.perf_counter()
            for i in range(R):
                NMF(r, solver="hals", device=device, **options).fit(X, W=W0[i], H=H0[i], **fit_options)
            sync(device)
            loop[point["iterations"]] = time.perf_counter() - start
        results[label] = dict(
            options=options, curve=curve,
            shares={f"{q:.0%}": None if p is None else dict(
                iterations=p["iterations"], seconds=p["seconds"], loop_seconds=loop.get(p["iterations"]),
                over_our_loop=loop[p["iterations"]] / p["seconds"] if loops else None,
                over_sklearn_loop=sklearn_seconds / p["seconds"])
                for q, p in first.items()})
    print(f"\nto the same errors as scikit-learn's CD after {max_budget} iterations ({sklearn_seconds:.2f} s for the loop;"
          f" median {np.median(target):.5f}, best {target.min():.5f}):")
    print(f"{'method':58s} {'share':>6s} {'iters':>6s} {'seconds':>8s} {'loop s':>8s} {'x loop':>7s} {'x sklearn':>9s}")
    for label, result in results.items():
        for share, p in result["shares"].items():
            if p is None:
                print(f"{label:58s} {share:>6s}   not reached in {budgets[-1]} iterations")
                continue
            loop_columns = f"{p['loop_seconds']:8.2f} {p['over_our_loop']:7.2f}" if loops else f"{'-':>8s} {'-':>7s}"
            print(f"{label:58s} {share:>6s} {p['iterations']:6d} {p['seconds']:8.3f} {loop_columns} "
                  f"{p['over_sklearn_loop']:9.2f}")
        last = result["curve"][-1]
        print(f"{'':58s} after {last['iterations']} iterations: median error {last['median_error']:.5f}, best {last['best_error']:.5f}")
    return dict(target_median=float(np.median(target)), target_best=float(target.min()), methods=results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=None)
    parser.add_argument("--no-same-error-loops", action="store_true",
                        help="to the same errors: skip the loops of single fits (minutes on a GPU, launch-bound)")
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
    batched = NMF(r, solver="hals", device=device, beta0=0.0)
    batched.fit(Xt.expand(R, m, n).contiguous(), W=W0, H=H0, **options)
    sync(device)
    rows["torchnmf_l1 batched"] = time.perf_counter() - start

    # the same R starts as replicates of one shared X (NMF(n_replicates=R)): no R copies of X
    sync(device)
    start = time.perf_counter()
    replicated = NMF(r, solver="hals", n_replicates=R, device=device, beta0=0.0)
    replicated.fit(Xt, W=W0, H=H0, **options)
    sync(device)
    rows["torchnmf_l1 replicates"] = time.perf_counter() - start

    singles = []
    sync(device)
    start = time.perf_counter()
    for i in range(R):
        model = NMF(r, solver="hals", device=device, beta0=0.0)
        model.fit(Xt, W=W0[i], H=H0[i], **options)
        singles.append(model)
    sync(device)
    rows["torchnmf_l1 loop"] = time.perf_counter() - start
    diff = max(float(((batched.W[i] @ batched.H[i] - s.W @ s.H).norm() / (s.W @ s.H).norm()).detach()) for i, s in enumerate(singles))
    diff = max(diff, max(float(((replicated.W[i] @ replicated.H[i] - s.W @ s.H).norm() / (s.W @ s.H).norm()).detach())
                         for i, s in enumerate(singles)))

    try:
        from sklearn.decomposition import non_negative_factorization
    except ImportError:  # the GPU image may not have it: the rows against it are left out
        non_negative_factorization = None
    if non_negative_factorization is not None:

        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sklearn_fits = [non_negative_factorization(X, W=w.copy(), H=h.copy(), n_components=r, init="custom",
                                                       solver="cd", tol=0, max_iter=k)[:2] for w, h in S]
        rows["sklearn cd loop"] = time.perf_counter() - start
        target = np.array([np.linalg.norm(X - w @ h) / np.linalg.norm(X) for w, h in sklearn_fits])

    same_errors = None
    if non_negative_factorization is not None:
        same_errors = to_the_same_errors(Xt, W0, H0, target, k, device, rows["sklearn cd loop"],
                                         loops=not args.no_same_error_loops)

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
                   batched_vs_single_max_relative_difference=diff, to_the_same_errors=same_errors)
    path = write(args.output or f"bench_batched_{device.type}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
