"""Where Ang and Gillis's extrapolation of HALS helps, and where it does not.

Four planted problems X = W H + noise (sizes, fitted rank, planted rank, noise level below),
30 random starts each as replicates (``NMF(n_replicates=30, init="random", seed=1)``), HALS
with its default inner sweeps, ``beta0=0`` (no extrapolation, the default) and
``beta0=0.5`` (the authors' default), ``tol=0`` for 20, 50, 100 and 300 iterations. Per case
and budget: the median over the starts of objective(extrapolated) / objective(plain), the share
of starts where the extrapolated fit is lower, and the ratio of the best objectives. This is
the measurement behind ``beta0=0`` being the default. Writes
``experiments/results/extrapolation_cases.json``; about two minutes at 2 threads.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine, write  # noqa: E402
from torchnmf_l1 import NMF  # noqa: E402

CASES = [  # (m, n, fitted rank, planted rank, noise)
    (40, 35, 5, 6, 0.1),
    (200, 100, 5, 5, 0.05),
    (100, 80, 10, 10, 0.01),
    (300, 200, 20, 30, 0.1),
]
BUDGETS = (20, 50, 100, 300)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--replicates", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'case':>22s} {'iters':>6s} {'median ratio':>13s} {'lower in':>9s} {'best ratio':>11s}")
    for m, n, rank, planted, noise in CASES:
        rng = np.random.default_rng(0)
        X = torch.as_tensor(rng.random((m, planted)) @ rng.random((planted, n)) + noise * rng.random((m, n)))
        for budget in BUDGETS:
            objectives = {}
            for beta0 in (0.0, 0.5):
                model = NMF(rank, solver="hals", n_replicates=args.replicates, init="random", seed=1, beta0=beta0)
                model.fit(X, max_iter=budget, tol=0, check_every=budget, warn=False)
                objectives[beta0] = np.asarray(model.replicate_objectives_)
            ratio = objectives[0.5] / objectives[0.0]
            row = dict(m=m, n=n, rank=rank, planted_rank=planted, noise=noise, iterations=budget,
                       median_ratio=float(np.median(ratio)), lower_share=float(np.mean(ratio < 1)),
                       best_ratio=float(objectives[0.5].min() / objectives[0.0].min()))
            rows.append(row)
            print(f"{f'{m}x{n} r={rank} ({planted}, {noise:g})':>22s} {budget:6d} {row['median_ratio']:13.3f} "
                  f"{row['lower_share']:9.2f} {row['best_ratio']:11.3f}")
    path = write("extrapolation_cases", dict(machine=machine(args.threads), replicates=args.replicates, rows=rows))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
