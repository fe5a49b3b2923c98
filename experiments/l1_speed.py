"""Speed table of L1-NMF: time per iteration of sCD (sparse X) and dense CD (dense X).

X is uniform random (m x n) with a fraction sp of its entries set to zero; both solvers
start from the same factors. Reports the measured gain t_dense / t_sparse beside the
theoretical gain mn log(mn) / (nnz log nnz). Writes experiments/results/l1_speed.{json,png}.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, machine_info, plt, print_table, save, time_steps
from torchnmf_l1.data import prepare_data
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss
from torchnmf_l1.registry import get_solver


def make_x(m, n, sparsity, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n))
    X[rng.random((m, n)) < sparsity] = 0.0
    return X


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--max-size", type=int, help="skip sizes with m*n above this")
    args = parser.parse_args(argv)
    cfg = load_config("l1_speed", args.config)
    iterations = args.iterations or cfg["iterations"]
    torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    loss = resolve_loss("l1")
    rows = []
    for m, n in cfg["sizes"]:
        if args.max_size and m * n > args.max_size:
            continue
        for sparsity in cfg["sparsity"]:
            X = make_x(m, n, sparsity, cfg["seed"])
            g = torch.Generator().manual_seed(cfg["seed"])
            W = torch.rand(m, cfg["rank"], generator=g, dtype=dtype)
            H = torch.rand(cfg["rank"], n, generator=g, dtype=dtype)
            sparse_problem = NMFProblem(prepare_data(sp.csr_matrix(X), dtype=dtype, device=cfg["device"]), loss)
            dense_problem = NMFProblem(prepare_data(X, dtype=dtype, device=cfg["device"]), loss)
            scd = get_solver("scd")(sparse_problem, FactorState(W.clone().to(cfg["device"]), H.clone().to(cfg["device"])))
            dcd = get_solver("cd-l1")(dense_problem, FactorState(W.clone().to(cfg["device"]), H.clone().to(cfg["device"])))
            scd.step(), dcd.step()  # warm-up
            t_sparse = time_steps(scd, iterations, cfg["device"])
            t_dense = time_steps(dcd, iterations, cfg["device"])
            nnz = int(np.count_nonzero(X))
            theory = (m * n * math.log(m * n)) / (nnz * math.log(nnz))
            gain = t_dense / t_sparse
            rows.append(dict(m=m, n=n, sparsity=sparsity, nnz=nnz, t_scd=t_sparse, t_dense_cd=t_dense,
                             gain=gain, theoretical_gain=theory, gain_over_theory=gain / theory))
            print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    target = [r for r in rows if r["m"] == 800 and r["sparsity"] == 0.8]
    met = bool(target and target[0]["gain"] >= 0.5 * target[0]["theoretical_gain"])
    save("l1_speed", {"config": cfg, "iterations": iterations, "machine": machine_info(cfg["device"]),
                      "rows": rows, "target_gain_half_theory_800x1000_80pct": met if target else None})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 4))
    for sparsity in cfg["sparsity"]:
        sub = [r for r in rows if r["sparsity"] == sparsity]
        ax.plot([r["m"] * r["n"] for r in sub], [r["gain"] for r in sub], "o-", label=f"measured, sp={sparsity:.0%}")
        ax.plot([r["m"] * r["n"] for r in sub], [r["theoretical_gain"] for r in sub], "x--", label=f"theory, sp={sparsity:.0%}")
    ax.set_xscale("log"), ax.set_xlabel("m n"), ax.set_ylabel("t(dense CD) / t(sCD)"), ax.legend(fontsize=7)
    ax.set_title(f"L1-NMF, r={cfg['rank']}, {iterations} it.")
    fig.tight_layout(), fig.savefig(figure_path("l1_speed"), dpi=120)


if __name__ == "__main__":
    main()
