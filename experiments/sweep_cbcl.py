"""rank_sweep on CBCL (361 x 2429 faces): ranks 10..60 step 10, 10 replicates each, against a loop.

The batched sweep (each rank's 10 replicates as one problem, HALS, the same iterations for
every fit: tol = 0) against a Python loop of the 60 single fits with the same seeds and
iterations; both from the same starts. Reports the total times, their ratio, and the table of
the sweep (errors, silhouette, cophenetic correlation). float32, 2 threads. Writes
experiments/results/sweep_cbcl.json.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import torch  # noqa: E402

from _l1_common import machine_info, print_table, save  # noqa: E402
from bench_frobenius import load_cbcl  # noqa: E402
from torchnmf_l1 import NMF  # noqa: E402
from torchnmf_l1.sweep import rank_sweep  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--replicates", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, source = load_cbcl()
    X = torch.as_tensor(X)
    ranks = list(range(10, 61, 10))
    start = time.perf_counter()
    sweep = rank_sweep(X, ranks, args.replicates, seed=0, max_iter=args.iterations, tol=0)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for rank in ranks:
            for k in range(args.replicates):
                NMF(rank, seed=k, init="random").fit(X, max_iter=args.iterations, tol=0, warn=False)
    loop = time.perf_counter() - start
    rows = sweep.table()
    print_table(rows, list(rows[0]))
    print(f"sweep {batched:.1f} s (stability and consensus included) vs a loop of the single fits {loop:.1f} s: "
          f"{loop / batched:.2f}x")
    save("sweep_cbcl", {"machine": machine_info("cpu"), "data": source, "ranks": ranks, "replicates": args.replicates,
                        "iterations": args.iterations, "seconds_sweep": batched, "seconds_loop_of_fits": loop,
                        "speedup": loop / batched, "table": rows})


if __name__ == "__main__":
    main()
