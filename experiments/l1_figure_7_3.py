"""Figure 7.3 of the L1-NMF paper: the weight lambda of the zeros under false zeros.

The paper's setting (Seraghiti, Gillis et al., arXiv 2603.29715, tests/Figure_7_3.jl):
ground truth X_t = W H with W (100 x 20), H (20 x 50) uniform; X = X_t + Laplace noise
(scale 0.1); a share q1 = 60 % of the entries of X set to zero: a share q2 of those at
random (missing entries) and the rest the smallest remaining entries (false zeros), for
q2 in {0, 25, 50, 75, 100} %; wL1-NMF by sCD for lambda in {0, 0.01, 0.03, 0.05, 0.07,
0.1, 1}, 10 iterations from the paper's start (uniform, least-squares scaled, balanced, 10
HALS iterations); 10 repetitions. Reports the relative error to the ground truth
||X_t - WH||_F / ||X_t||_F, averaged over the repetitions (clipped at 1 in the figure, as
the paper's). Writes experiments/results/l1_figure_7_3.{json,png}.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, machine_info, paper_start, plt, print_table, save
from torchnmf_l1 import NMF


def observed(cfg, random_share, rng):
    """(ground truth, X with its zeros) for one repetition."""
    m, n, r = cfg["m"], cfg["n"], cfg["rank"]
    truth = rng.random((m, r)) @ rng.random((r, n))
    X = truth + rng.laplace(0.0, cfg["laplace_b"], size=(m, n))
    X = np.maximum(X, 0.0)  # (never active at these sizes: the entries of W H are ~5, the noise ~0.1)
    random_count = round(random_share * cfg["zero_share"] * m * n)
    smallest_count = round((1 - random_share) * cfg["zero_share"] * m * n)
    X.flat[rng.permutation(m * n)[:random_count]] = 0.0
    remaining = np.flatnonzero(X > 0)
    X.flat[remaining[np.argsort(X.flat[remaining], kind="stable")[:smallest_count]]] = 0.0
    return truth, X


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--repetitions", type=int)
    args = parser.parse_args(argv)
    cfg = load_config("l1_figure_7_3", args.config)
    reps = args.repetitions or cfg["repetitions"]
    torch.set_num_threads(cfg["threads"])
    errors = np.zeros((len(cfg["random_shares"]), len(cfg["lambdas"])))
    for rep in range(1, reps + 1):
        for t, share in enumerate(cfg["random_shares"]):
            truth, X = observed(cfg, share, np.random.default_rng(1000 * rep + t))
            W0, H0 = paper_start(X, cfg["rank"], seed=rep, hals_iter=10, tol=1e-6)
            for j, lam in enumerate(cfg["lambdas"]):
                loss = dict(loss="l1") if lam == 1.0 else dict(loss="wl1", zero_weight=lam)
                model = NMF(cfg["rank"], solver="scd", dtype=torch.float64, **loss)
                model.fit(sp.csr_matrix(X), W=W0, H=H0, max_iter=cfg["iterations"], tol=0, warn=False)
                errors[t, j] += np.linalg.norm(truth - model.reconstruct().numpy()) / np.linalg.norm(truth) / reps
    rows = [{"random share q2": share, **{f"lambda={lam:g}": errors[t, j] for j, lam in enumerate(cfg["lambdas"])}}
            for t, share in enumerate(cfg["random_shares"])]
    print_table(rows, list(rows[0]))
    best = {f"q2={share:g}": cfg["lambdas"][int(np.argmin(errors[t]))] for t, share in enumerate(cfg["random_shares"])}
    print("best lambda per random share:", best)
    save("l1_figure_7_3", {
        "paper_setting": "Figure 7.3: m = 100, n = 50, r = 20, Laplace b = 0.1, q1 = 60 %, q2 in 0..100 %, lambda in "
                         "{0, .01, .03, .05, .07, .1, 1}, 10 sCD iterations from 10 HALS, 10 repetitions",
        "our_setting": f"the same, {reps} repetitions (NumPy's generator: other draws than Julia's)",
        "config": cfg, "machine": machine_info("cpu"), "errors": errors.tolist(), "rows": rows, "best_lambda": best,
    })
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 4))
    for t, share in enumerate(cfg["random_shares"]):
        ax.plot(range(len(cfg["lambdas"])), np.minimum(errors[t], 1.0), "o-", label=f"q2 = {share:g}")
    ax.set_xticks(range(len(cfg["lambdas"])), [f"{lam:g}" for lam in cfg["lambdas"]])
    ax.set(xlabel="lambda", ylabel="||X_t - WH|| / ||X_t||  (clipped at 1)",
           title=f"Figure 7.3: q1 = {cfg['zero_share']:.0%} zeros, {reps} repetitions")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figure_path("l1_figure_7_3"), dpi=110)


if __name__ == "__main__":
    main()
