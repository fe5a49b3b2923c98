"""Benchmark: Itakura-Saito (and beta < 1) multiplicative updates on piano_Mary, against nmf-torch.

X is the 129 x 586 magnitude spectrogram ``X`` of ``../shared/data/piano_Mary.mat`` (all entries
positive), r = 8, float32, 2 threads, every method from the same start (uniform in
[0, sqrt(mean X / r)), seed 0). For beta = 0 (IS) and beta = 0.5:

* ours with the default exponent gamma(beta) = 1 / (2 - beta) (0.5 for IS), the exponent for
  which every update provably does not increase the objective (Fevotte and Idier, 2011);
* ours with ``exponent=1``: the heuristic MU of Lee-Seung form, the one nmf-torch and
  scikit-learn use, faster per iteration in practice but without a monotonicity guarantee
  for beta outside [1, 2];
* nmf-torch's batch MU (its ``_update_H`` / ``_update_W``, our start written into its factors).

Reported per method: seconds per iteration (median over timed blocks), the objective after
``--iterations`` iterations, whether it ever increased, and the time to reach nmf-torch's final
objective (``None`` if not reached within twice nmf-torch's time). Writes
``experiments/results/bench_is.json`` (``--output``). Run: ``python experiments/bench_is.py`` (about a minute;
``--threads 1 --output bench_is_1thread`` for one thread, where small problems run best).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np
import scipy.io
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write  # noqa: E402
from torchnmf_l1 import kernels  # noqa: E402
from torchnmf_l1.data import prepare_data  # noqa: E402
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"
BLOCK = 10  # iterations between objective evaluations (not timed)


def divergence(X, W, H, beta):
    return float(kernels.beta_divergence(X, W, H, beta))


def ours(X, W0, H0, beta, exponent):
    loss = resolve_loss("is") if beta == 0 else resolve_loss("beta", beta=beta)
    solver = get_solver("mu")(NMFProblem(prepare_data(X), loss), FactorState(W0.clone(), H0.clone()),
                              exponent=exponent)

    def advance(k):
        with torch.no_grad():
            for _ in range(k):
                solver.step()

    return advance, lambda: (solver.state.W, solver.state.H)


def nmf_torch(X, W0, H0, beta):
    from nmf.nmf_models import NMFBatchMU

    model = NMFBatchMU(n_components=W0.shape[1], init="random", beta_loss=beta, tol=0.0, random_state=0,
                       alpha_W=0.0, l1_ratio_W=0.0, alpha_H=0.0, l1_ratio_H=0.0, fp_precision=torch.float32,
                       device_type="cpu", n_jobs=torch.get_num_threads(), max_iter=0)
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(X.clone())
    model.H, model.W = W0.clone(), H0.clone()  # nmf-torch factors X ~ H W: its H is our W

    def advance(k):
        for _ in range(k):
            model._update_H()
            model._update_W()

    return advance, lambda: (model.H, model.W)


def trace(factory, X, beta, iterations):
    advance, factors = factory()
    elapsed, times, objectives = 0.0, [0.0], [divergence(X, *factors(), beta)]
    per_block = []
    for _ in range(iterations // BLOCK):
        t = time.perf_counter()
        advance(BLOCK)
        block = time.perf_counter() - t
        per_block.append(block / BLOCK)
        elapsed += block
        times.append(elapsed)
        objectives.append(divergence(X, *factors(), beta))
    return dict(seconds_per_iteration=float(np.median(per_block)), times=times, objectives=objectives)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="bench_is")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = SHARED_DATA / "piano_Mary.mat"
    if not path.exists():
        raise SystemExit(f"piano_Mary.mat is not at {path} (../shared/data beside the repository)")
    X = torch.tensor(scipy.io.loadmat(path)["X"], dtype=torch.float32)
    rng = np.random.default_rng(0)
    scale = float(np.sqrt(float(X.mean()) / args.rank))
    W0 = torch.tensor(rng.random((X.shape[0], args.rank)) * scale, dtype=torch.float32)
    H0 = torch.tensor(rng.random((args.rank, X.shape[1])) * scale, dtype=torch.float32)
    rows = []
    for beta in args.betas:
        methods = {
            "nmf-torch mu": lambda: nmf_torch(X, W0, H0, beta),
            "ours mu (default exponent)": lambda: ours(X, W0, H0, beta, None),
            "ours mu (exponent=1)": lambda: ours(X, W0, H0, beta, 1.0),
        }
        results = {name: trace(f, X, beta, args.iterations) for name, f in methods.items()}
        reference = results["nmf-torch mu"]
        target, budget = reference["objectives"][-1], 2 * reference["times"][-1]
        for name, res in results.items():
            # time to reach nmf-torch's final objective, continuing up to twice its time
            reached = next((t for t, v in zip(res["times"], res["objectives"]) if v <= target), None)
            if reached is None and name != "nmf-torch mu":
                advance, factors = methods[name]()
                elapsed, done = 0.0, 0
                while elapsed < budget:
                    t = time.perf_counter()
                    advance(BLOCK)
                    elapsed += time.perf_counter() - t
                    done += BLOCK
                    if divergence(X, *factors(), beta) <= target:
                        reached = elapsed
                        break
            increases = int(np.sum(np.diff(res["objectives"]) > 1e-6 * abs(res["objectives"][0])))
            row = dict(beta=beta, method=name, seconds_per_iteration=res["seconds_per_iteration"],
                       objective=res["objectives"][-1], objective_increases=increases,
                       seconds_to_nmf_torch_objective=reached,
                       nmf_torch_over_this_per_iteration=reference["seconds_per_iteration"] / res["seconds_per_iteration"],
                       trace=dict(seconds=res["times"], objective=res["objectives"]))
            rows.append(row)
            print(f"beta={beta:3.1f} {name:28s} {row['seconds_per_iteration'] * 1e3:7.3f} ms/it "
                  f"(nmf-torch / this x{row['nmf_torch_over_this_per_iteration']:.2f})  objective after "
                  f"{args.iterations}: {row['objective']:.6g}  increases {increases}  to nmf-torch's objective: "
                  f"{'not reached' if reached is None else f'{reached:.3f} s'}", flush=True)
    out = write(args.output, dict(machine=machine(args.threads), rank=args.rank, iterations=args.iterations,
                                 data="piano_Mary X (129 x 586 magnitude spectrogram), float32", rows=rows,
                                 description=__doc__))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
