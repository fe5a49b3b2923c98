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

Reports the wall time of each (the least of ``--repeats`` timings), the ratios, and checks
that the batched factors equal the single fits (max relative difference).

Then *to the same errors* (the issue's criterion): scikit-learn's CD after ``--iterations``
iterations gives each start a target error; each of our methods runs budgets of
10, 20, ... ``--iterations`` iterations (``tol = 0``), and the table gives, for the share q of
starts whose error is at most scikit-learn's (q = 50, 90, 95, 100 %), the least time of a
budget that reaches it: plain HALS (``beta0=0``, one sweep per factor: scikit-learn's
algorithm), HALS with Ang and Gillis's extrapolation (``beta0=0.5``) and with it the
accelerated inner sweeps (``alpha=0.5`` with the change rule ``delta=0.1``; ``alpha=1`` with
a fixed count, ``delta=0``), as replicates (one call) and as a loop of single fits (the same
iterates, so the same errors). scikit-learn's loop is timed at the thread count given and at
one thread (its products are too small to gain from a second; our fits of problems this
small run on one thread by default, ``fit(threads="auto")``), twice each, and the ratios
are taken against the fastest of these. Writes
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
    # a fixed count of inner sweeps (5 for W, 6 for H here): no change tracking between sweeps
    "hals extrapolated + inner sweeps (beta0=0.5, alpha=1, delta=0)": dict(beta0=0.5, alpha=1.0, delta=0.0),
}


def relative_errors(X, model):
    """Per replicate ||X - W_k H_k|| / ||X||, in chunks (kernels.relative_error): no R reconstructions at once."""
    return kernels.relative_error(X, model.W.detach(), model.H.detach()).cpu().double().numpy()


def loop_of_single_fits(X, W0, H0, device, options, fit_options):
    """One NMF fit per start, one after another (our loop): the fitted models."""
    models = []
    for W, H in zip(W0, H0):
        model = NMF(W0.shape[-1], solver="hals", device=device, **options)
        model.fit(X, W=W, H=H, **fit_options)
        models.append(model)
    return models


def max_relative_difference(stacked, singles):
    """max over k of ||W_k H_k - W H|| / ||W H|| between a batched model and the single fits."""
    return max(float(((stacked.W[i] @ stacked.H[i] - s.W @ s.H).norm() / (s.W @ s.H).norm()).detach())
               for i, s in enumerate(singles))


def timed(run, device, repeats=1):
    """The least wall time of ``repeats`` calls of ``run()`` (the shared machine's slow spells
    hit single timings; the least is the one they spared) and the last call's result."""
    best, result = np.inf, None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = run()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, result


def to_the_same_errors(X, W0, H0, target, max_budget, device, sklearn_seconds, loops=True, repeats=3):
    """For each method and share q: the least time of an iteration budget whose errors are at
    most scikit-learn's in a share q of the starts (replicates in one call, and a loop).
    The curve times each budget once; the budget reported for a share is timed ``repeats``
    times as replicates and twice as a loop, and the least time is kept."""
    r, R = W0.shape[-1], W0.shape[0]
    budgets = list(range(10, max_budget + 1, 10)) or [max_budget]
    results = {}

    def replicates(options, budget):
        model = NMF(r, solver="hals", n_replicates=R, device=device, **options)
        model.fit(X, W=W0, H=H0, max_iter=budget, tol=0, check_every=budget, warn=False)
        return model

    for label, options in METHODS.items():
        curve = []
        for budget in budgets:
            seconds, model = timed(lambda: replicates(options, budget), device)
            errors = relative_errors(X, model)
            curve.append(dict(iterations=budget, seconds=seconds, reached=float(np.mean(errors <= target * (1 + 1e-9))),
                              median_error=float(np.median(errors)), best_error=float(errors.min())))
        first = {q: next((c for c in curve if c["reached"] >= q), None) for q in SHARES}
        seconds, loop = {}, {}
        for q, point in first.items():  # each reported budget timed again (once per budget)
            if point is None or point["iterations"] in seconds:
                continue
            budget = point["iterations"]
            again, _ = timed(lambda: replicates(options, budget), device, repeats - 1)
            seconds[budget] = min(point["seconds"], again)
            if loops:
                fit_options = dict(max_iter=budget, tol=0, check_every=budget, warn=False)
                loop[budget], _ = timed(lambda: loop_of_single_fits(X, W0, H0, device, options, fit_options), device, 2)
        results[label] = dict(
            options=options, curve=curve,
            shares={f"{q:.0%}": None if p is None else dict(
                iterations=p["iterations"], seconds=seconds[p["iterations"]], loop_seconds=loop.get(p["iterations"]),
                over_our_loop=loop[p["iterations"]] / seconds[p["iterations"]] if loops else None,
                over_sklearn_loop=sklearn_seconds / seconds[p["iterations"]])
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
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings per reported row of replicates (the least is kept)")
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

    def fit_batch():
        model = NMF(r, solver="hals", device=device, beta0=0.0)
        model.fit(Xt.expand(R, m, n).contiguous(), W=W0, H=H0, **options)
        return model

    def fit_replicates():  # the same R starts as replicates of one shared X: no R copies of X
        model = NMF(r, solver="hals", n_replicates=R, device=device, beta0=0.0)
        model.fit(Xt, W=W0, H=H0, **options)
        return model

    rows["torchnmf_l1 batched"], batched = timed(fit_batch, device, args.repeats)
    rows["torchnmf_l1 replicates"], replicated = timed(fit_replicates, device, args.repeats)

    rows["torchnmf_l1 loop"], singles = timed(lambda: loop_of_single_fits(Xt, W0, H0, device, dict(beta0=0.0), options),
                                              device)
    diff = max(max_relative_difference(batched, singles), max_relative_difference(replicated, singles))

    try:
        from sklearn.decomposition import non_negative_factorization
    except ImportError:  # the GPU image may not have it: the rows against it are left out
        non_negative_factorization = None
    sklearn_seconds, same_errors = None, None
    if non_negative_factorization is not None:
        from threadpoolctl import threadpool_limits

        sklearn_seconds = {}
        for threads in sorted({args.threads, 1}):
            for _ in range(2):
                with threadpool_limits(threads), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    sklearn_fits = [non_negative_factorization(X, W=w.copy(), H=h.copy(), n_components=r, init="custom",
                                                               solver="cd", tol=0, max_iter=k)[:2] for w, h in S]
                    seconds = time.perf_counter() - start
                sklearn_seconds[threads] = min(seconds, sklearn_seconds.get(threads, np.inf))
        print("scikit-learn CD loop by thread count (best of 2): "
              + ", ".join(f"{t}: {s:.3f} s" for t, s in sklearn_seconds.items()))
        rows["sklearn cd loop"] = min(sklearn_seconds.values())
        target = np.array([np.linalg.norm(X - w @ h) / np.linalg.norm(X) for w, h in sklearn_fits])
        same_errors = to_the_same_errors(Xt, W0, H0, target, k, device, rows["sklearn cd loop"],
                                         loops=not args.no_same_error_loops, repeats=args.repeats)

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
                   batched_vs_single_max_relative_difference=diff, to_the_same_errors=same_errors,
                   sklearn_loop_seconds_by_threads=sklearn_seconds)
    path = write(args.output or f"bench_batched_{device.type}", payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
