"""Table 7.1 of the L1-NMF paper: time per iteration of sCD (sparse X) and dense CD.

The paper's setting (Seraghiti, Gillis et al., arXiv 2603.29715, tests/Table_7_1.jl):
X uniform in [0, 1) with a share sp of its entries set to 0, sizes 100 x 200 .. 800 x 1000,
sp = 25/50/80 %, r = 20, lambda = 1, 30 iterations, 10 repetitions (seeds 1..10), the
start of the paper (uniform, least-squares scaled, balanced, 10 Frobenius HALS
iterations), no early stop. Both solvers start from the same factors; the dense solver
gets X as a dense tensor, sCD as CSR. Reports per size and sparsity the median time per
iteration of each, their final objective / sum(X), the nonzero ratio
sigma = log(mn) / ((1 - sp) log((1 - sp) mn)) of the paper and the gain t_CD / t_sCD,
and whether gain >= sigma / 2 (this project's target). Writes
experiments/results/l1_table_7_1.{json,png}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, machine_info, paper_start, plt, print_table, save
from torchnmf_l1 import NMF


def make_x(m, n, sparsity, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n))
    X.flat[rng.permutation(m * n)[: round(sparsity * m * n)]] = 0.0  # exactly sp m n zeros, as the paper
    return X


def run(solver, X, W0, H0, cfg, iterations):
    model = NMF(cfg["rank"], loss="l1" if cfg["lam"] == 1 else "wl1", solver=solver, dtype=torch.float64,
                **({} if cfg["lam"] == 1 else {"zero_weight": cfg["lam"]}))
    start = time.perf_counter()
    result = model.fit(X, W=W0, H=H0, max_iter=iterations, tol=0, check_every=iterations, threads=cfg["threads"])
    seconds = time.perf_counter() - start
    return seconds / iterations, result.extra["objective_over_sum_x"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--repetitions", type=int)
    parser.add_argument("--max-size", type=int, help="skip sizes with m*n above this")
    args = parser.parse_args(argv)
    cfg = load_config("l1_table_7_1", args.config)
    iterations = args.iterations or cfg["iterations"]
    torch.set_num_threads(cfg["threads"])
    rows = []
    for m, n in cfg["sizes"]:
        if args.max_size and m * n > args.max_size:
            continue
        reps = args.repetitions or (cfg["repetitions_large"] if m * n >= cfg["large_size"] else cfg["repetitions"])
        for sparsity in cfg["sparsity"]:
            X = make_x(m, n, sparsity, seed=m * 1000 + int(100 * sparsity))
            times = {"scd": [], "cd-l1": []}
            errors = {"scd": [], "cd-l1": []}
            for rep in range(1, reps + 1):
                W0, H0 = paper_start(X, cfg["rank"], seed=rep, hals_iter=10, tol=0.0)
                for solver, data in (("scd", sp.csr_matrix(X)), ("cd-l1", X)):
                    t, e = run(solver, data, W0, H0, cfg, iterations)
                    times[solver].append(t)
                    errors[solver].append(e)
            sigma = math.log(m * n) / ((1 - sparsity) * math.log((1 - sparsity) * m * n))
            t_s, t_d = statistics.median(times["scd"]), statistics.median(times["cd-l1"])
            rows.append(dict(m=m, n=n, sparsity=sparsity, repetitions=reps, t_scd=t_s, t_cd=t_d,
                             error_scd=statistics.mean(errors["scd"]), error_cd=statistics.mean(errors["cd-l1"]),
                             sigma=sigma, gain=t_d / t_s, target_met=t_d / t_s >= sigma / 2))
            print_table(rows[-1:], list(rows[-1]), )
    print()
    print_table(rows, list(rows[0]))
    save("l1_table_7_1", {
        "paper_setting": "Table 7.1: sizes 100x200, 300x400, 500x600, 800x1000; sp 25/50/80 %; r = 20; lambda = 1; "
                         "30 iterations; 10 repetitions; start: uniform, LS-scaled, balanced, 10 HALS; Julia, 1 thread",
        "our_setting": f"the same, {iterations} iterations, {cfg['repetitions']} repetitions "
                       f"({cfg['repetitions_large']} from m*n = {cfg['large_size']}), PyTorch {torch.__version__}, "
                       f"{cfg['threads']} threads; time = median over repetitions",
        "config": cfg, "machine": machine_info("cpu"), "rows": rows,
        "target_gain_at_least_half_sigma_everywhere": all(r["target_met"] for r in rows),
    })
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(10, 3.8))
    for sparsity in cfg["sparsity"]:
        sub = [r for r in rows if r["sparsity"] == sparsity]
        x = [r["m"] * r["n"] for r in sub]
        axes[0].plot(x, [r["t_scd"] for r in sub], "o-", label=f"sCD, sp={sparsity:.0%}")
        axes[0].plot(x, [r["t_cd"] for r in sub], "x--", label=f"CD, sp={sparsity:.0%}")
        axes[1].plot(x, [r["gain"] for r in sub], "o-", label=f"measured, sp={sparsity:.0%}")
        axes[1].plot(x, [r["sigma"] / 2 for r in sub], "k:", linewidth=0.8)
    axes[0].set(xscale="log", yscale="log", xlabel="m n", ylabel="seconds per iteration (median)")
    axes[1].set(xscale="log", xlabel="m n", ylabel="gain t(CD) / t(sCD)  (dotted: sigma / 2)")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(f"L1-NMF, Table 7.1 protocol: r = {cfg['rank']}, lambda = {cfg['lam']:g}, {iterations} iterations")
    fig.tight_layout()
    fig.savefig(figure_path("l1_table_7_1"), dpi=110)


if __name__ == "__main__":
    main()
