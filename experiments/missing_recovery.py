"""Missing entries of planted low-rank nonnegative data: are the held-out entries recovered?

X = W H + noise (W, H uniform, Gaussian noise of ``noise * mean(WH)``, clipped at 0); a share
of the entries is removed uniformly at random. From the same random start, fit on the
observed entries only:

* ours, weighted HALS with a dense mask, and with a sparse mask (the support layout);
* ours, weighted MU (Frobenius);
* WLRA as in the NMF book's companion code (Gillis, *Nonnegative Matrix Factorization*,
  SIAM 2020, ch. 6): block coordinate descent over the columns of W and H of
  ``||X - W H||_P^2 + lambda (||W||_F^2 + ||H||_F^2)`` with P the 0/1 mask, W, H >= 0 and
  lambda = 1e-6, reimplemented here in NumPy from that description (column update
  ``W_k = max(0, ((P o R_k) H_k^T) / (P (H_k^2)^T + lambda))``, R_k the residual without
  component k), the same number of iterations.

Reported: the held-out error ``||X - WH||`` on the removed entries relative to ``||X||``
there, against the noise level on the same entries (``||X - W H_true||`` there); a ratio
near 1 is recovery to the noise level. Writes experiments/results/missing_recovery.{json,png}.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from _l1_common import figure_path, load_config, machine_info, plt, print_table, save
from torchnmf_l1 import NMF

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", category=UserWarning, module="torchnmf_l1")


def wlra(X, P, W, H, iterations, lam):
    """The book's WLRA with nonnegativity, as described in the module docstring (NumPy)."""
    W, H = W.copy(), H.copy()
    R = P * (X - W @ H)
    for _ in range(iterations):
        for k in range(W.shape[1]):
            R += P * np.outer(W[:, k], H[k])
            W[:, k] = np.maximum(0.0, (R @ H[k]) / (P @ H[k] ** 2 + lam))
            H[k] = np.maximum(0.0, (W[:, k] @ R) / (W[:, k] ** 2 @ P + lam))
            R -= P * np.outer(W[:, k], H[k])
    return W, H


def held_out_error(X, WH, missing):
    return float(np.linalg.norm((X - WH)[missing]) / np.linalg.norm(X[missing]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--seeds", type=int, help="use the first N seeds (a quick run)")
    args = parser.parse_args(argv)
    cfg = load_config("missing_recovery", args.config)
    torch.set_num_threads(cfg["threads"])
    m, n = cfg["shape"]
    r = cfg["rank"]
    seeds = cfg["seeds"][: args.seeds] if args.seeds else cfg["seeds"]
    rows = []
    for share in cfg["missing"]:
        results = {}
        for seed in seeds:
            rng = np.random.default_rng(seed)
            clean = rng.random((m, r)) @ rng.random((r, n))
            X = np.maximum(clean + cfg["noise"] * clean.mean() * rng.standard_normal((m, n)), 0.0)
            missing = rng.random((m, n)) < share
            observed = ~missing
            W0, H0 = rng.random((m, r)), rng.random((r, n))
            noise_level = held_out_error(X, clean, missing)
            runs = {}
            for label, solver, kwargs in (
                ("HALS, dense mask", "hals", {"mask": torch.from_numpy(observed)}),
                ("HALS, sparse mask", "hals", {"mask": torch.from_numpy(observed).to_sparse_csr()}),
                ("MU", "mu", {"mask": torch.from_numpy(observed)}),
            ):
                model = NMF(r, solver=solver, **({"scale_init": False} if solver == "hals" else {}))
                start = time.perf_counter()
                result = model.fit(torch.from_numpy(X), W=torch.from_numpy(W0), H=torch.from_numpy(H0),
                                   max_iter=cfg["max_iter"], tol=cfg["tol"], warn=False, **kwargs)
                seconds = time.perf_counter() - start
                WH = (model.W @ model.H).detach().numpy()
                runs[label] = (held_out_error(X, WH, missing), seconds, result.n_iter)
            iterations = runs["HALS, dense mask"][2]
            start = time.perf_counter()
            Ww, Hw = wlra(X, observed.astype(float), W0, H0, iterations, cfg["wlra_lambda"])
            runs["WLRA (book)"] = (held_out_error(X, Ww @ Hw, missing), time.perf_counter() - start, iterations)
            for label, (error, seconds, its) in runs.items():
                results.setdefault(label, []).append((error / noise_level, error, seconds, its, noise_level))
        for label, values in results.items():
            rows.append(dict(missing=share, method=label,
                             held_out_over_noise=statistics.mean(v[0] for v in values),
                             worst_over_noise=max(v[0] for v in values),
                             held_out_error=statistics.mean(v[1] for v in values),
                             noise_level=statistics.mean(v[4] for v in values),
                             seconds=statistics.mean(v[2] for v in values),
                             iterations=statistics.mean(v[3] for v in values)))
            print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    save("missing_recovery", {"config": cfg, "seeds": seeds, "machine": machine_info("cpu"), "rows": rows})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5.5, 4))
    for label in dict.fromkeys(row["method"] for row in rows):
        sub = [row for row in rows if row["method"] == label]
        ax.plot([row["missing"] for row in sub], [row["held_out_over_noise"] for row in sub], "o-", label=label)
    ax.axhline(1.0, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("share of entries missing"), ax.set_ylabel("held-out error / noise level")
    ax.set_title(f"{m} x {n}, rank {r}, noise {cfg['noise']:.0%} of mean")
    ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(figure_path("missing_recovery"), dpi=120)


if __name__ == "__main__":
    main()
