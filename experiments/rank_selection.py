"""Rank selection on planted data: which rank does each criterion of rank_sweep pick?

X = W H + noise with a known rank (6), W and H of sparse-ish uniform powers, Gaussian noise of
``noise`` times the mean of WH (clipped at 0), 20 seeds. For each seed, ``rank_sweep`` over
ranks 3..9 with R replicates and a speckled 10 % holdout; the criteria:

* cross-validation: the rank of the lowest held-out error;
* cophenetic correlation: the largest rank before the largest drop of the cophenetic
  correlation (Brunet et al.'s rule);
* silhouette: the largest rank whose component clusters have a silhouette >= 0.9 (cNMF's
  stability threshold style).

Reports the share of seeds where each criterion picks the true rank (target for the
cross-validation: >= 95 %), and the time of one sweep. Writes experiments/results/rank_selection.json.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _l1_common import machine_info, print_table, save  # noqa: E402
from torchnmf_l1.sweep import rank_sweep  # noqa: E402


def planted(seed, m=100, n=150, rank=6, noise=0.02):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, rank, generator=g, dtype=torch.float64) ** 3
    H = torch.rand(rank, n, generator=g, dtype=torch.float64) ** 3
    X = W @ H
    return (X + noise * X.mean() * torch.randn(m, n, generator=g, dtype=torch.float64)).clamp_min(0)


def cophenetic_pick(rows):
    values = [row["cophenetic"] for row in rows]
    drops = [values[i] - values[i + 1] for i in range(len(values) - 1)]
    return rows[int(np.argmax(drops))]["rank"]


def silhouette_pick(rows, threshold=0.9):
    stable = [row["rank"] for row in rows if row["silhouette"] >= threshold]
    return max(stable) if stable else rows[0]["rank"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    true_rank, ranks = 6, list(range(3, 10))
    picks, seconds = [], []
    for seed in range(args.seeds):
        X = planted(seed)
        start = time.perf_counter()
        sweep = rank_sweep(X, ranks, args.replicates, holdout=0.1, seed=seed, max_iter=500, tol=1e-6)
        seconds.append(time.perf_counter() - start)
        rows = sweep.table()
        pick = dict(seed=seed, cross_validation=min(rows, key=lambda row: row["held_out_error"])["rank"],
                    cophenetic=cophenetic_pick(rows), silhouette=silhouette_pick(rows), seconds=seconds[-1])
        picks.append(pick)
        print_table([pick], list(pick))
    shares = {c: sum(p[c] == true_rank for p in picks) / len(picks) for c in ("cross_validation", "cophenetic", "silhouette")}
    print(f"share of seeds picking the true rank {true_rank}: {shares}; one sweep {np.median(seconds):.1f} s (median)")
    save("rank_selection", {"machine": machine_info("cpu"), "true_rank": true_rank, "ranks": ranks,
                            "replicates": args.replicates, "holdout": 0.1, "picks": picks, "share_true_rank": shares,
                            "cross_validation_target_met": shares["cross_validation"] >= 0.95,
                            "median_seconds_per_sweep": float(np.median(seconds))})


if __name__ == "__main__":
    main()
