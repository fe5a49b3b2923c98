"""Missing entries: time per iteration of weighted HALS and MU against the share observed.

For each share of observed entries (a uniform random mask), the mask is given dense (a
bool m x n tensor: the dense layout, O(mnr) per iteration whatever the share) and sparse
(a CSR matrix of the observed entries: the support layout, O(|Omega| r)); the unmasked
iteration is timed beside them. The log-log slope of the sparse times against the number
of observed entries is fitted by least squares (target 0.8-1.2).

Cost per iteration (both factors), m x n, rank r, |Omega| observed entries:

* dense layout: HALS r row updates per factor, each a GEMV and a rank-one update of the
  weighted residual (about 5 m n memory passes), plus the residual once (one GEMM): O(mnr);
  MU two GEMMs per factor on m x n ratios: O(mnr). Memory: X, the weights, the residual (3 m n).
* support layout: HALS r row updates per factor, each a gather, two scatter-adds and an
  update of the residual on the observed entries: O(|Omega| r); MU WH on the observed
  entries and two sparse GEMMs per factor: O(|Omega| r). Memory: rows, columns, values,
  weights and residual of the observed entries, and the CSR of their transpose.

Writes experiments/results/bench_masks.{json,png}.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

from _l1_common import figure_path, load_config, machine_info, plt, print_table, save, time_steps
from torchnmf_l1.missing import prepare_weighted
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss
from torchnmf_l1.registry import get_solver

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def step_time(solver_name, data, weights, W, H, iterations):
    problem = NMFProblem(data, resolve_loss("frobenius"), weights=weights)
    solver = get_solver(solver_name)(problem, FactorState(W.clone(), H.clone()))
    solver.step()  # warm-up: first-touch allocations
    return time_steps(solver, iterations)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--shape", type=int, nargs=2, help="override the config's shape (a quick run)")
    args = parser.parse_args(argv)
    cfg = load_config("bench_masks", args.config)
    if args.shape:
        cfg["shape"] = args.shape
    torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    m, n = cfg["shape"]
    r = cfg["rank"]
    g = torch.Generator().manual_seed(cfg["seed"])
    X = torch.rand(m, r, generator=g, dtype=dtype) @ torch.rand(r, n, generator=g, dtype=dtype)
    W = torch.rand(m, r, generator=g, dtype=dtype)
    H = torch.rand(r, n, generator=g, dtype=dtype)
    rows = []
    full, _, _ = prepare_weighted(X, dtype=dtype)
    unmasked = {s: step_time(s, full, None, W, H, cfg["iterations"]) for s in cfg["solvers"]}
    for share in cfg["observed"]:
        mask = torch.rand(m, n, generator=g) < share
        dense_data, dense_weights, _ = prepare_weighted(X, mask, dtype=dtype)
        sparse_data, sparse_weights, _ = prepare_weighted(X, mask.to_sparse_csr(), dtype=dtype)
        for solver in cfg["solvers"]:
            t_dense = step_time(solver, dense_data, dense_weights, W, H, cfg["iterations"])
            t_sparse = step_time(solver, sparse_data, sparse_weights, W, H, cfg["iterations"])
            rows.append(dict(solver=solver, observed=share, entries=int(mask.sum()), t_dense_mask=t_dense,
                             t_sparse_mask=t_sparse, t_unmasked=unmasked[solver],
                             dense_layout="unweighted (all observed)" if dense_weights is None else "weighted"))
            print_table(rows[-1:], list(rows[-1]))
    slopes = {}
    for solver in cfg["solvers"]:
        sub = [row for row in rows if row["solver"] == solver]
        slopes[solver] = float(np.polyfit(np.log([row["entries"] for row in sub]),
                                          np.log([row["t_sparse_mask"] for row in sub]), 1)[0])
    print()
    print_table(rows, list(rows[0]))
    for solver, slope in slopes.items():
        print(f"{solver}: log-log slope of the sparse-mask time against the observed entries {slope:.3f} (target 0.8-1.2)")
    save("bench_masks", {"config": cfg, "machine": machine_info("cpu"), "rows": rows, "sparse_slopes": slopes,
                         "slopes_in_target": {s: 0.8 <= v <= 1.2 for s, v in slopes.items()}})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5.5, 4))
    for solver in cfg["solvers"]:
        sub = [row for row in rows if row["solver"] == solver]
        x = [row["observed"] for row in sub]
        ax.loglog(x, [row["t_sparse_mask"] for row in sub], "o-", label=f"{solver}, sparse mask (slope {slopes[solver]:.2f})")
        ax.loglog(x, [row["t_dense_mask"] for row in sub], "x--", label=f"{solver}, dense mask")
        ax.axhline(unmasked[solver], color="gray", lw=0.8, ls=":")
    ax.set_xlabel("share of entries observed"), ax.set_ylabel("seconds / iteration")
    ax.set_title(f"masked NMF, {m} x {n}, r = {r} (dotted: no mask)")
    ax.legend(fontsize=7)
    fig.tight_layout(), fig.savefig(figure_path("bench_masks"), dpi=120)


if __name__ == "__main__":
    main()
