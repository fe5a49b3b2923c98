"""Benchmark: small Frobenius NMF problems, time to 1.01 x the best error, against the peers.

Problems: 200 x 100 with r = 5 and 60 x 30 with r = 3 (X = W H + noise, 5 seeds each),
float32 and float64, 2 threads, the same random start for every method (uniform, scaled
by sqrt(mean(X) / r), given to scikit-learn as ``init="custom"``). For each method:

1. its error after k iterations, found from its own deterministic iterates, gives the
   first k at which ||X - WH||_F / ||X||_F <= 1.01 x the best error any method reached
   (within 5000 iterations);
2. the wall time of one uninterrupted call doing exactly those k iterations from the
   start (setup included; the median of 5 repeats): the time to target.

Methods: scikit-learn ``cd`` and ``mu`` (``non_negative_factorization``), nmf-torch HALS
and MU (its batch models stepped iteration by iteration), and ours: ``NMF(solver="hals")``
(default options; eager), the same step compiled (``fit(compile=True)``: "warm" = the
compiled step of this shape already cached by an earlier fit, the usual case for repeated
fits; the compile time is reported apart), and ``NMF(solver="mu")``.

It also counts the aten operators and the host reads of one HALS iteration
(``torchnmf_l1.diagnostics``) on the small problems and on CBCL (361 x 2429, r = 49),
for this tree and, with ``--before REV`` (default ``7f11fe1``, the last commit before
the solver core of issue 13), for that git revision, read with ``git archive`` into a
temporary folder and run in a subprocess.

Writes ``experiments/results/bench_small.json``. Run: ``python experiments/bench_small.py``
(about 5 minutes; ``--quick`` for 2 seeds).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import machine, write  # noqa: E402
from torchnmf_l1 import NMF  # noqa: E402

THREADS = 2
PROBLEMS = [(200, 100, 5), (60, 30, 3)]
BUDGET = 5000


def problem(m, n, r, seed, dtype):
    rng = np.random.default_rng(seed)
    X = rng.random((m, r)) @ rng.random((r, n)) + 0.05 * rng.random((m, n))
    scale = np.sqrt(X.mean() / r)
    W0, H0 = rng.random((m, r)) * scale, rng.random((r, n)) * scale
    return X.astype(dtype), W0.astype(dtype), H0.astype(dtype)


# ----------------------------------------------------------------------------- methods
# Each method: errors(X, W0, H0, k_max) -> list of errors after 0..k_max iterations (or a
# callable error(k)), and run(X, W0, H0, k) -> None, one uninterrupted call of k iterations.
def _error(X, W, H):
    return float(np.linalg.norm(X.astype(np.float64) - W.astype(np.float64) @ H.astype(np.float64)) / np.linalg.norm(X))


def sklearn_method(solver):
    from sklearn.decomposition import non_negative_factorization

    def call(X, W0, H0, k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return non_negative_factorization(X, W=W0.copy(), H=H0.copy(), n_components=W0.shape[1], init="custom",
                                              solver=solver, tol=0.0, max_iter=k)

    def error_after(X, W0, H0):
        def error(k):
            if k == 0:
                return _error(X, W0, H0)
            W, H, _ = call(X, W0, H0, k)
            return _error(X, W, H)

        return error

    return dict(error_after=error_after, run=lambda X, W0, H0, k: call(X, W0, H0, k))


def nmf_torch_method(algo):
    from nmf.nmf_models import NMFBatchHALS, NMFBatchMU

    def build(X, W0, H0):
        dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        common = dict(n_components=W0.shape[1], init="random", beta_loss=2.0, tol=0.0, random_state=0, alpha_W=0.0,
                      l1_ratio_W=0.0, alpha_H=0.0, l1_ratio_H=0.0, fp_precision=dtype, device_type="cpu",
                      n_jobs=THREADS, max_iter=0)
        model = NMFBatchHALS(hals_tol=0.05, hals_max_iter=200, **common) if algo == "hals" else NMFBatchMU(**common)
        with contextlib.redirect_stdout(io.StringIO()):
            model.fit(torch.from_numpy(X))  # max_iter=0: sets up X and its caches only
        model.H, model.W = torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())  # its X ~ H W
        model._WWT, model._HTH, model._XWT = model.W @ model.W.T, model.H.T @ model.H, model.X @ model.W.T
        return model

    def step(model):
        model._update_H()
        model._update_W()

    def errors(X, W0, H0, k_max):
        model = build(X, W0, H0)
        out = [_error(X, W0, H0)]
        for _ in range(k_max):
            step(model)
            out.append(_error(X, model.H.numpy(), model.W.numpy()))
        return out

    def run(X, W0, H0, k):
        model = build(X, W0, H0)
        for _ in range(k):
            step(model)

    return dict(errors=errors, run=run)


DEVICE = torch.device("cpu")


def ours(solver, compile=False, **options):
    def fit(X, W0, H0, k, callbacks=(), check_every=10):
        model = NMF(W0.shape[1], solver=solver, device=DEVICE, **options)
        X, W0, H0 = (torch.as_tensor(a, device=DEVICE) for a in (X, W0, H0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, W=W0, H=H0, max_iter=k, tol=0, check_every=check_every, callbacks=callbacks, compile=compile)
        return model

    def errors(X, W0, H0, k_max):
        out = [_error(X, W0, H0)]

        def record(info):
            out.append(_error(X, info.solver.W.detach().cpu().numpy(), info.solver.H.detach().cpu().numpy()))

        fit(X, W0, H0, k_max, callbacks=[record], check_every=1)
        return out

    return dict(errors=errors, run=lambda X, W0, H0, k: fit(X, W0, H0, k))


def methods(peers=True):
    out = {
        "torchnmf_l1 hals": ours("hals"),
        "torchnmf_l1 hals compiled (warm)": ours("hals", compile=True),
        "torchnmf_l1 mu": ours("mu"),
    }
    if not peers:
        return out
    out = {"sklearn cd": sklearn_method("cd"), "sklearn mu": sklearn_method("mu"), **out}
    try:
        import nmf.nmf_models  # noqa: F401

        out["nmf-torch hals"] = nmf_torch_method("hals")
        out["nmf-torch mu"] = nmf_torch_method("mu")
    except ImportError:  # pragma: no cover - the bench extra is not installed
        pass
    return out


def first_reaching(errors, target):
    """First k with errors[k] <= target (errors a list), or None."""
    return next((k for k, e in enumerate(errors) if e <= target), None)


def first_reaching_search(error, target, k_max):
    """Smallest k <= k_max with error(k) <= target for a non-increasing error(k) (binary search)."""
    if error(k_max) > target:
        return None
    low, high = 0, k_max
    while low < high:
        mid = (low + high) // 2
        if error(mid) <= target:
            high = mid
        else:
            low = mid + 1
    return low


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(m, n, r, seed, dtype, all_methods, repeats):
    X, W0, H0 = problem(m, n, r, seed, dtype)
    finals, curves, searchers = {}, {}, {}
    for name, method in all_methods.items():
        if "errors" in method:
            curves[name] = method["errors"](X, W0, H0, BUDGET)
            finals[name] = min(curves[name])
        else:
            searchers[name] = method["error_after"](X, W0, H0)
            finals[name] = searchers[name](BUDGET)
    best = min(finals.values())
    target = 1.01 * best
    row = dict(m=m, n=n, r=r, seed=seed, dtype=str(dtype.__name__), best_error=best, methods={})
    for name, method in all_methods.items():
        k = first_reaching(curves[name], target) if name in curves else first_reaching_search(searchers[name], target, BUDGET)
        entry = dict(final_error=finals[name], iterations_to_target=k)
        if k is not None:
            if "compiled" in name:
                start = time.perf_counter()
                method["run"](X, W0, H0, 1)  # the compile of this shape (cached for the runs below)
                entry["compile_seconds"] = time.perf_counter() - start
            entry["time_to_target"] = timed(lambda: method["run"](X, W0, H0, k), repeats)
            long = max(k, 200)
            entry["seconds_per_iteration"] = timed(lambda: method["run"](X, W0, H0, long), 1) / long
        row["methods"][name] = entry
    return row


# ----------------------------------------------------------------------------- op counts
COUNT_SCRIPT = r'''
import json, sys, numpy as np, torch
from collections import Counter
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
torch.set_num_threads(2)
sys.path.insert(0, sys.argv[1])
from torchnmf_l1.data import prepare_data
from torchnmf_l1.problem import NMFProblem, resolve_loss
from torchnmf_l1.registry import get_solver
READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__, torch.Tensor.__int__}
class Reads(TorchFunctionMode):
    def __init__(self):
        super().__init__(); self.n = 0
    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.n += func in READS
        return func(*args, **(kwargs or {}))
class Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__(); self.n = 0
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))
def solver(m, n, r, X=None):
    rng = np.random.default_rng(0)
    X = rng.random((m, r)) @ rng.random((r, n)) if X is None else X
    problem = NMFProblem(prepare_data(torch.from_numpy(np.asarray(X, dtype=np.float64))), resolve_loss("frobenius"))
    W, H = torch.from_numpy(rng.random((X.shape[0], r))), torch.from_numpy(rng.random((r, X.shape[1])))
    try:
        from torchnmf_l1.problem import FactorState
        return get_solver("hals")(problem, FactorState(W, H))
    except ImportError:
        return get_solver("hals")(problem, W, H)
cases = {"200x100 r=5": (200, 100, 5), "60x30 r=3": (60, 30, 3)}
out = {}
for label, (m, n, r) in cases.items():
    s = solver(m, n, r)
    with torch.no_grad():
        s.step()
        reads, ops = Reads(), Ops()
        with reads, ops:
            s.step()
    out[label] = {"aten_ops": ops.n, "host_reads": reads.n}
cbcl = sys.argv[2]
if cbcl:
    import scipy.io
    X = scipy.io.loadmat(cbcl)["X"]
    s = solver(None, None, 49, X)
    with torch.no_grad():
        s.step()
        reads, ops = Reads(), Ops()
        with reads, ops:
            s.step()
    out["CBCL 361x2429 r=49"] = {"aten_ops": ops.n, "host_reads": reads.n}
print(json.dumps(out))
'''


def count_ops(tree: Path) -> dict:
    cbcl = ROOT.parent / "shared" / "data" / "CBCL.mat"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(COUNT_SCRIPT)
    try:
        out = subprocess.run([sys.executable, f.name, str(tree), str(cbcl) if cbcl.exists() else ""],
                             capture_output=True, text=True, timeout=600, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_ops_of(rev: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "torchnmf_l1"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        return count_ops(Path(tmp))


# ----------------------------------------------------------------------------- driver
def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, float64 only")
    parser.add_argument("--before", default="7f11fe1", help="git revision whose op counts are the 'before' column")
    parser.add_argument("--output", default=None)
    parser.add_argument("--device", default="cpu", help="where our methods run (the peers run on the CPU)")
    parser.add_argument("--no-peers", action="store_true", help="only our methods (e.g. on a GPU machine)")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(THREADS)
    seeds = range(2) if args.quick else range(5)
    dtypes = [np.float64] if args.quick else [np.float32, np.float64]
    all_methods = methods(peers=not args.no_peers)
    rows = []
    for m, n, r in PROBLEMS:
        for dtype in dtypes:
            for seed in seeds:
                row = run_case(m, n, r, seed, dtype, all_methods, repeats=3 if args.quick else 5)
                rows.append(row)
                line = "  ".join(f"{k.replace('torchnmf_l1 ', '')}: {v.get('time_to_target', float('nan')) * 1e3:.2f}ms"
                                 for k, v in row["methods"].items())
                print(f"{m}x{n} r={r} {dtype.__name__} seed {seed}: {line}", flush=True)
    summary = {}
    for m, n, r in PROBLEMS:
        for dtype in dtypes:
            group = [row for row in rows if (row["m"], row["n"], row["r"], row["dtype"]) == (m, n, r, dtype.__name__)]
            key = f"{m}x{n} r={r} {dtype.__name__}"
            summary[key] = {}
            for name in all_methods:
                times = [row["methods"][name].get("time_to_target") for row in group]
                reached = [t for t in times if t is not None]
                per_it = [row["methods"][name].get("seconds_per_iteration") for row in group]
                per_it = [t for t in per_it if t is not None]
                cd = [row["methods"].get("sklearn cd", {}).get("time_to_target") for row in group]
                ratios = [c / t for c, t in zip(cd, times) if c is not None and t is not None]
                summary[key][name] = dict(
                    reached=f"{len(reached)}/{len(group)}",
                    median_time_to_target=statistics.median(reached) if reached else None,
                    median_seconds_per_iteration=statistics.median(per_it) if per_it else None,
                    speed_vs_sklearn_cd=statistics.median(ratios) if ratios else None,
                )
    print(f"\n{'case':24s} {'method':36s} {'reached':>8} {'time (ms)':>10} {'ms/it':>8} {'x sklearn cd':>13}")
    for key, entries in summary.items():
        for name, e in entries.items():
            t = e["median_time_to_target"]
            it = e["median_seconds_per_iteration"]
            ratio = e["speed_vs_sklearn_cd"]
            print(f"{key:24s} {name:36s} {e['reached']:>8} {t * 1e3 if t else float('nan'):10.2f} "
                  f"{it * 1e3 if it else float('nan'):8.4f} {ratio if ratio else float('nan'):13.2f}")
    ops = {"after": count_ops(ROOT)}
    try:
        ops["before"] = count_ops_of(args.before)
        ops["before_revision"] = args.before
    except (subprocess.CalledProcessError, FileNotFoundError) as err:  # no git history (e.g. an sdist)
        ops["before"] = f"not measured: {err}"
    print("\naten ops and host reads per HALS iteration:", json.dumps(ops, indent=1))
    info = machine(THREADS)
    info["device"] = str(DEVICE)
    if DEVICE.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(DEVICE)
    payload = dict(machine=info, threads=THREADS, budget_iterations=BUDGET, rows=rows, summary=summary,
                   ops_per_iteration=ops,
                   note=("time to target: one uninterrupted call doing the iterations that reach 1.01 x the best error "
                         "(setup included), median of repeats; speed_vs_sklearn_cd = sklearn cd time / method time "
                         "(> 1: faster than scikit-learn)"))
    path = write(args.output or ("bench_small" if DEVICE.type == "cpu" else f"bench_small_{DEVICE.type}"), payload)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
