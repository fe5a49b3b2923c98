"""False zeros: weighted L1-NMF (lambda < 1) vs L1-NMF (lambda = 1).

W, H uniform (m x r, r x n), Laplace noise of scale b; 60 % of the entries are set to
zero, a share at random (missing entries) and the rest the smallest entries
(censoring). For each lambda, wL1-NMF by sCD; reported: relative error to the true
matrix ||W H - W_t H_t||_F / ||W_t H_t||_F (mean over seeds). Writes
experiments/results/l1_false_zeros.{json,png}.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, machine_info, plt, print_table, save
from torchnmf_l1 import NMF


def make_problem(cfg, seed):
    rng = np.random.default_rng(seed)
    m, n, r = cfg["m"], cfg["n"], cfg["rank"]
    truth = rng.random((m, r)) @ rng.random((r, n))
    X = np.maximum(truth + rng.laplace(scale=cfg["laplace_b"], size=(m, n)), 0.0)
    total = int(round(cfg["zero_fraction"] * m * n))
    n_random = int(round(cfg["random_share"] * total))
    flat = X.reshape(-1)
    missing = rng.choice(m * n, size=n_random, replace=False)
    flat[missing] = 0.0
    rest = np.setdiff1d(np.arange(m * n), missing)
    smallest = rest[np.argsort(flat[rest])[: total - n_random]]
    flat[smallest] = 0.0
    return sp.csr_matrix(X), truth


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    cfg = load_config("l1_false_zeros", args.config)
    torch.set_num_threads(cfg["threads"])
    rows = []
    for lam in cfg["lambdas"]:
        errors = []
        for seed in cfg["seeds"]:
            X, truth = make_problem(cfg, seed)
            model = NMF(cfg["rank"], loss="wl1", zero_weight=lam, solver="scd", seed=seed, dtype=torch.float64)
            model.fit(X, max_iter=cfg["iterations"], tol=0)
            WH = model().detach().numpy()
            errors.append(float(np.linalg.norm(WH - truth) / np.linalg.norm(truth)))
        rows.append(dict(lam=lam, rel_err_mean=float(np.mean(errors)), rel_err_std=float(np.std(errors)),
                         per_seed=errors))
        print_table(rows[-1:], ["lam", "rel_err_mean", "rel_err_std"])
    print()
    print_table(rows, ["lam", "rel_err_mean", "rel_err_std"])
    l1 = next(r for r in rows if r["lam"] == 1.0)["rel_err_mean"]
    better = [r["lam"] for r in rows if r["lam"] < 1 and r["rel_err_mean"] < l1]
    print(f"lambda < 1 beats lambda = 1 at lambda in {better}")
    save("l1_false_zeros", {"config": cfg, "machine": machine_info(), "rows": rows, "lambdas_beating_l1": better})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5, 4))
    lams = [r["lam"] for r in rows]
    ax.errorbar(range(len(lams)), [r["rel_err_mean"] for r in rows], yerr=[r["rel_err_std"] for r in rows], fmt="o-")
    ax.set_xticks(range(len(lams)), [f"{x:g}" for x in lams])
    ax.set_xlabel("lambda (weight of the zeros)"), ax.set_ylabel("||WH - W_t H_t||_F / ||W_t H_t||_F")
    ax.set_title("false zeros: wL1-NMF")
    fig.tight_layout(), fig.savefig(figure_path("l1_false_zeros"), dpi=120)


if __name__ == "__main__":
    main()
