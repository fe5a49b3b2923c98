"""Worker of tests/test_distributed.py, started once per rank with RANK/WORLD_SIZE/MASTER_* set.

Usage: python tests/distributed_worker.py OUT_DIR MODE   (MODE: fit | die)
Every rank builds the same planted data and start from seed 0, fits its columns, and
rank 0 writes the gathered factors (fit) or each rank writes the error it saw (die).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from torchnmf_l1.distributed import (  # noqa: E402
    DistributedFitError,
    DistributedNMFSolver,
    column_range,
    init_distributed,
)
from torchnmf_l1.fit import run_fit  # noqa: E402

M, N, R, ITERS = 20, 60, 4, 15


def problem():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(M, R, generator=g, dtype=torch.float64) @ torch.rand(R, N, generator=g, dtype=torch.float64)
    W0 = torch.rand(M, R, generator=g, dtype=torch.float64)
    H0 = torch.rand(R, N, generator=g, dtype=torch.float64)
    return X, W0, H0


def problem_l1():
    """The same factors, with 40 % of the entries of X set to zero and 5 % made outliers."""
    X, W0, H0 = problem()
    g = torch.Generator().manual_seed(1)
    X = torch.where(torch.rand(M, N, generator=g, dtype=torch.float64) < 0.4, 0.0, X)
    outliers = torch.rand(M, N, generator=g, dtype=torch.float64) < 0.05
    return torch.where(outliers, 10 * X, X), W0, H0


def problem_missing():
    """The Frobenius problem with 30 % of the entries missing (NaN) and entry weights."""
    X, W0, H0 = problem()
    g = torch.Generator().manual_seed(2)
    X = torch.where(torch.rand(M, N, generator=g) < 0.3, float("nan"), X)
    weights = 0.5 + torch.rand(M, N, generator=g, dtype=torch.float64)
    return X, W0, H0, weights


# name -> (options of DistributedNMFSolver, problem); the L1 variants exercise the distributed weighted median
VARIANTS = {
    "frobenius-weighted": (dict(loss="frobenius"), problem_missing),
    "frobenius": (dict(loss="frobenius"), problem),
    "kl": (dict(loss="kl"), problem),
    "l1": (dict(loss="l1"), problem_l1),
    "wl1": (dict(loss="wl1", zero_weight=0.3, l1_reg_W=0.05, l1_reg_H=0.02), problem_l1),
}


def main(out_dir, mode):
    torch.set_num_threads(1)
    rank, world = init_distributed("gloo", timeout=float(os.environ.get("NMF_TEST_TIMEOUT", "10")))
    a, b = column_range(N, world, rank)
    results = {}
    try:
        for name, (options, make_problem) in VARIANTS.items():
            X, W0, H0, *weights = make_problem()
            W, H = W0.clone(), H0[:, a:b].clone()
            if weights:
                options = dict(options, weights=weights[0][:, a:b].contiguous())
            solver = DistributedNMFSolver(X[:, a:b].contiguous(), W, H, **options)
            if mode == "die":
                original = solver.step

                def step(original=original, solver=solver):
                    if rank == world - 1 and solver.iteration == 3:
                        os._exit(3)  # a rank dies mid-fit
                    original()

                solver.step = step
            start = time.perf_counter()
            result = run_fit(solver, max_iter=ITERS, tol=0, check_every=ITERS, warn=False)
            H_all = [torch.empty(R, column_range(N, world, p)[1] - column_range(N, world, p)[0], dtype=torch.float64)
                     for p in range(world)]
            dist.all_gather(H_all, H)
            results[name] = dict(W=W, H=torch.cat(H_all, 1), objective=result.final_objective,
                                 bytes=solver.bytes_all_reduced,
                                 gathered=solver.bytes_all_gathered, seconds=time.perf_counter() - start)
    except DistributedFitError as exc:
        torch.save({"error": str(exc), "type": type(exc).__name__, "time": time.time()},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        os._exit(0)
    if rank == 0:
        torch.save(results, os.path.join(out_dir, "result.pt"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
