"""Scaling of sCD for L1-NMF: time per iteration against nnz(X) at a fixed shape.

X is sparse uniform random (m x n) at several densities; the log-log slope of the
time per iteration against nnz is fitted by least squares (target: in [0.8, 1.2]).
Writes experiments/results/l1_scaling.{json,png}.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
import torch

from _l1_common import figure_path, load_config, machine_info, plt, print_table, save, time_steps
from torchnmf_l1.data import prepare_data
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss
from torchnmf_l1.registry import get_solver


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--device")
    args = parser.parse_args(argv)
    cfg = load_config("l1_scaling", args.config)
    device = args.device or cfg["device"]
    torch.set_num_threads(cfg["threads"])
    dtype = getattr(torch, cfg["dtype"])
    m, n = cfg["shape"]
    rows = []
    for density in cfg["densities"]:
        X = sp.random(m, n, density=density, random_state=cfg["seed"], format="csr")
        g = torch.Generator().manual_seed(cfg["seed"])
        W = torch.rand(m, cfg["rank"], generator=g, dtype=dtype).to(device)
        H = torch.rand(cfg["rank"], n, generator=g, dtype=dtype).to(device)
        problem = NMFProblem(prepare_data(X, dtype=dtype, device=device), resolve_loss("l1"))
        solver = get_solver("scd")(problem, FactorState(W, H))
        solver.step()
        t = time_steps(solver, cfg["iterations"], device)
        rows.append(dict(m=m, n=n, density=density, nnz=int(X.nnz), t_iter=t))
        print_table(rows[-1:], list(rows[-1]))
    nnz = np.array([r["nnz"] for r in rows], float)
    times = np.array([r["t_iter"] for r in rows])
    slope = float(np.polyfit(np.log(nnz), np.log(times), 1)[0])
    print()
    print_table(rows, list(rows[0]))
    print(f"log-log slope of time/iteration vs nnz: {slope:.3f} (target [0.8, 1.2])")
    save("l1_scaling", {"config": cfg, "machine": machine_info(device), "rows": rows, "slope": slope,
                        "slope_in_target": 0.8 <= slope <= 1.2})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5, 4))
    ax.loglog(nnz, times, "o-", label=f"sCD, slope {slope:.2f}")
    ax.loglog(nnz, times[0] * nnz / nnz[0], "k:", label="slope 1")
    ax.set_xlabel("nnz(X)"), ax.set_ylabel("seconds / iteration"), ax.legend()
    ax.set_title(f"sCD scaling, {m}x{n}, r={cfg['rank']}")
    fig.tight_layout(), fig.savefig(figure_path("l1_scaling"), dpi=120)


if __name__ == "__main__":
    main()
