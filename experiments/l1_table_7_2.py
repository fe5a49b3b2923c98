"""Table 7.2 of the L1-NMF paper: four algorithms for L1-NMF on noisy MNIST.

The paper's setting (Seraghiti, Gillis et al., arXiv 2603.29715, tests/Table_7_2.jl): 300
MNIST digits scaled to [0, 1], salt-and-pepper noise p in {0, 4, 8, 12, 16} % (see
l1_figures_7_1_2.py), r = 50, lambda = 1; sCD and dense CD (the paper's stopping rule: the
decrease of objective / sum(X) below 1e-6), NS (Nesterov smoothing, sigma = 0.5) and SUB
(projected subgradient, beta = 0.01), all from the same start (uniform, least-squares
scaled, balanced, 10 HALS iterations), each with a time budget (paper: 90 s). Reports per
p the final objective / sum(X) ("res") and the iterations done of each, the sparsity of
X, the theoretical gain mn log(mn) / (nnz log nnz) and the measured gain (iterations of
sCD / iterations of CD in the same time). Writes experiments/results/l1_table_7_2.{json,png}.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, load_mnist, machine_info, paper_start, plt, print_table, salt_and_pepper, save
from torchnmf_l1 import NMF


def methods(cfg):
    return {  # label: (solver, options, sparse input, tol)
        "NS": ("ns", {"sigma": cfg["sigma"]}, False, cfg["tol"]),
        "SUB": ("sub", {"step": cfg["beta"]}, False, 0.0),  # the paper's SUB has no early stop
        "sCD": ("scd", {"stopping": "paper"}, True, cfg["tol"]),
        "CD": ("cd-l1", {"stopping": "paper"}, False, cfg["tol"]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--time-limit", type=float)
    args = parser.parse_args(argv)
    cfg = load_config("l1_table_7_2", args.config)
    if args.time_limit:
        cfg["time_limit"] = args.time_limit
    torch.set_num_threads(cfg["threads"])
    loaded = load_mnist(cfg["images"], cfg["seed"])
    if loaded is None:
        from sklearn.datasets import load_digits

        clean, source = load_digits().data.T[:, : cfg["images"]] / 16.0, "sklearn digits (mnist5k.mat absent)"
    else:
        clean, source = loaded[0], "mnist5k.mat"
    rng = np.random.default_rng(cfg["seed"])
    rows, curves = [], {}
    m, n = clean.shape
    for p in cfg["noise"]:
        X = salt_and_pepper(clean, p, rng)
        nnz = int(np.count_nonzero(X))
        W0, H0 = paper_start(X, cfg["rank"], seed=1, hals_iter=10, tol=1e-6)
        row = dict(noise=p, sparsity_pct=100 * (1 - nnz / X.size), sigma=(m * n * math.log(m * n)) / (nnz * math.log(nnz)))
        total = X.sum()
        for label, (solver, options, sparse_input, tol) in methods(cfg).items():
            model = NMF(cfg["rank"], loss="l1", solver=solver, dtype=torch.float64, **options)
            result = model.fit(sp.csr_matrix(X) if sparse_input else X, W=W0, H=H0, max_iter=cfg["max_iter"], tol=tol,
                               time_limit=cfg["time_limit"], check_every=1, warn=False, threads=cfg["threads"])
            row[f"{label} res"] = result.final_objective / total
            row[f"{label} iter"] = result.n_iter
            curves[(p, label)] = (result.times, [v / total for v in result.objective])
        row["gain"] = row["sCD iter"] / max(row["CD iter"], 1)
        rows.append(row)
        print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    save("l1_table_7_2", {
        "paper_setting": "Table 7.2: 300 MNIST digits, p in 0..16 %, r = 50, time limit 90 s, sCD vs CD vs NS "
                         "(sigma 0.5) vs SUB (beta 0.01), from 10 HALS; res = final objective / sum(X)",
        "our_setting": f"{cfg['images']} digits of {source}, the same grid and parameters, time limit "
                       f"{cfg['time_limit']:g} s per method, {cfg['threads']} threads",
        "config": cfg, "machine": machine_info("cpu"), "rows": rows,
    })
    pyplot = plt()
    fig, axes = pyplot.subplots(1, len(cfg["noise"]), figsize=(3.2 * len(cfg["noise"]), 3.2), sharey=True)
    for ax, p in zip(np.atleast_1d(axes), cfg["noise"]):
        for label in methods(cfg):
            times, values = curves[(p, label)]
            ax.plot(times, values, label=label)
        ax.set(title=f"p = {p:g}", xlabel="seconds", xscale="symlog")
    np.atleast_1d(axes)[0].set_ylabel("objective / sum(X)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figure_path("l1_table_7_2"), dpi=110)


if __name__ == "__main__":
    main()
