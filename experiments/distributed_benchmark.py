"""Data-parallel NMF over P gloo processes on this machine: Frobenius HALS or L1 sCD.

For P in --procs (default 1 2 4) the script starts P local processes (127.0.0.1, a free
port; or run one configuration under ``torchrun --nproc-per-node=P``). Every rank builds
its columns of the same synthetic m x n float32 matrix, runs --iters outer iterations
and records the wall time per iteration (the slowest rank) and the bytes it passed to
all_reduce and all_gather (counted by DistributedNMFSolver), against the model:

- ``--loss frobenius``: m r + r^2 floats per iteration;
- ``--loss l1`` (X with --density nonzeros, 5 % of them outliers): per coordinate of W,
  m totals plus ``rounds`` all-reduces of 2 P m counts and all-gathers of m pivots,
  rounds = bit length of the longest local row; compared with r nnz(X) floats, what
  gathering the breakpoints would cost. The single-process in-memory sCD iteration
  (``NMF(loss="l1", solver="scd")``) is timed in the same run as the reference.

Usage: python experiments/distributed_benchmark.py [--loss frobenius|l1] [--procs 1 2 4]
       [--rows 200 --cols 200000 --rank 10 --density 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from torchnmf_l1 import NMF, ConvergenceWarning  # noqa: E402
from torchnmf_l1.distributed import (  # noqa: E402
    DistributedNMFSolver,
    column_range,
    init_distributed,
)
from torchnmf_l1.data import Data  # noqa: E402
from torchnmf_l1.init import initialize  # noqa: E402


def planted_l1(args) -> torch.Tensor:
    """The L1 data: W_true with density q and two nonzeros per column of H_true, so that X
    has about ``--density`` nonzeros; 5 % of the entries multiplied by 10 (outliers)."""
    g = torch.Generator().manual_seed(0)
    q = 1 - (1 - args.density) ** 0.5
    W_true = torch.rand(args.m, args.rank, generator=g) * (torch.rand(args.m, args.rank, generator=g) < q)
    support = torch.rand(args.rank, args.n, generator=g).argsort(0)[:2]
    H_true = torch.zeros(args.rank, args.n).scatter_(0, support, torch.rand(2, args.n, generator=g))
    X = W_true @ H_true
    return torch.where(torch.rand(args.m, args.n, generator=g) < 0.05, 10 * X, X)


def columns(args, start, stop):
    """Columns [start, stop) of the synthetic X, the start W and the H block (the same on any split).

    Frobenius: a dense rank-r product of uniform factors, uniform start. L1: the planted
    sparse model of :func:`planted_l1`, started from the reference L1-NMF initialisation
    computed once on the whole X (:func:`write_l1_init`).
    """
    if args.loss == "l1":
        W, H = torch.load(args.init_file)
        return planted_l1(args)[:, start:stop], W, H[:, start:stop].contiguous()
    W_true = torch.rand(args.m, args.rank, generator=torch.Generator().manual_seed(0))
    H_true = torch.rand(args.rank, args.n, generator=torch.Generator().manual_seed(1))[:, start:stop]
    W = torch.rand(args.m, args.rank, generator=torch.Generator().manual_seed(3))
    H = torch.rand(args.rank, args.n, generator=torch.Generator().manual_seed(4))[:, start:stop].contiguous()
    return W_true @ H_true, W, H


def write_l1_init(args) -> None:
    """The reference L1-NMF initialisation (random, scaled, balanced, 10 HALS sweeps) of the whole X."""
    X = planted_l1(args).to_sparse_csr()
    W, H = initialize(Data.from_tensor(X), args.rank, "l1-init", generator=torch.Generator().manual_seed(0))
    torch.save((W, H), args.init_file)


warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")



def worker(args):
    torch.set_num_threads(args.threads)
    rank, world = init_distributed("gloo", timeout=120.0)
    a, b = column_range(args.n, world, rank)
    X, W, H = columns(args, a, b)
    if args.loss == "l1":
        X = X.to_sparse_csr()
    solver = DistributedNMFSolver(X, W, H, loss=args.loss)
    solver.step()  # warm-up
    solver.bytes_all_reduced = solver.bytes_all_gathered = 0
    dist.barrier()
    t = time.perf_counter()
    for _ in range(args.iters):
        solver.step()
    dist.barrier()
    elapsed = time.perf_counter() - t
    rounds = getattr(solver.statistics, "rounds", 0)
    stats = torch.tensor([elapsed, float(solver.bytes_all_reduced), float(solver.bytes_all_gathered), rounds],
                         dtype=torch.float64)
    gathered = [torch.zeros(4, dtype=torch.float64) for _ in range(world)]
    dist.all_gather(gathered, stats)
    if rank == 0:
        with open(args.result, "w") as f:
            json.dump({"seconds": [float(s[0]) for s in gathered], "bytes": [float(s[1]) for s in gathered],
                       "gathered": [float(s[2]) for s in gathered], "rounds": int(gathered[0][3])}, f)
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args, world, result):
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        cmd = [sys.executable, __file__, "--worker", "--rows", str(args.m), "--cols", str(args.n), "--rank", str(args.rank),
               "--iters", str(args.iters), "--threads", str(args.threads), "--result", result,
               "--loss", args.loss, "--density", str(args.density), "--init-file", args.init_file]
        procs.append(subprocess.Popen(cmd, env=env))
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker exited with {p.returncode}")
    with open(result) as f:
        return json.load(f)


def single_process_seconds(args) -> float:
    """Seconds per iteration of the in-memory solver on the whole X (same start).

    Timed as (fit of 1 + iters iterations - fit of 1 iteration) / iters, so that the
    one-off setup (support, layouts, residual) is left out, as in the distributed timing.
    """
    torch.set_num_threads(args.threads)
    X, W, H = columns(args, 0, args.n)
    solver_options = dict(loss="l1", solver="scd") if args.loss == "l1" else dict(solver="hals", alpha=0, scale_init=False)
    model = NMF(args.rank, **solver_options)
    if args.loss == "l1":
        X = X.to_sparse_csr()
    seconds = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed iteration count is the point here
        for iters in (1, 1, 1 + args.iters):  # the first fit is a warm-up
            t = time.perf_counter()
            model.fit(X, W=W, H=H, max_iter=iters, tol=0, check_every=iters)
            seconds[iters] = time.perf_counter() - t
    return (seconds[1 + args.iters] - seconds[1]) / args.iters


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--loss", choices=sorted(STATISTICS), default="frobenius")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--rows", dest="m", type=int, default=200)
    p.add_argument("--cols", dest="n", type=int, default=200_000)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--density", type=float, default=0.1)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--result", default="/tmp/torchnmf_l1_dist_result.json")
    p.add_argument("--init-file", default="/tmp/torchnmf_l1_dist_init.pt")
    args = p.parse_args()
    if args.worker or "TORCHELASTIC_RUN_ID" in os.environ:
        worker(args)
        return
    m, r = args.m, args.rank
    if args.loss == "l1":
        write_l1_init(args)
    nnz = int((columns(args, 0, args.n)[0] != 0).sum()) if args.loss == "l1" else args.m * args.n
    rows = []
    for world in args.procs:
        res = launch(args, world, args.result)
        per_iter = max(res["seconds"]) / args.iters
        reduced = res["bytes"][0] / args.iters
        gathered = res["gathered"][0] / args.iters
        if args.loss == "l1":
            model = 4 * r * (m + res["rounds"] * 2 * world * m + res["rounds"] * m)
        else:
            model = 4 * (m * r + r * r)
        rows.append({"processes": world, "seconds_per_iteration": per_iter, "selection_rounds": res["rounds"],
                     "all_reduce_bytes_per_iteration_per_rank": reduced,
                     "all_gather_bytes_per_iteration_per_rank": gathered,
                     "model_bytes_per_iteration": model, "measured_over_model": (reduced + gathered) / model,
                     "gather_breakpoints_bytes_per_iteration": 4 * r * nnz if args.loss == "l1" else None})
    reference = single_process_seconds(args)
    base = rows[0]["seconds_per_iteration"]
    print(f"{args.loss}: X {m} x {args.n} float32 (nnz {nnz}), rank {r}, {args.iters} iterations, "
          f"{args.threads} thread(s) per process; in-memory solver {reference:.4f} s/iteration")
    print(f"{'procs':>5} {'s/iter':>9} {'vs 1 proc':>9} {'vs in-mem':>9} {'rounds':>6} {'bytes/iter':>11} "
          f"{'model':>9} {'ratio':>6} {'gather b/iter':>13}")
    for row in rows:
        sent = row["all_reduce_bytes_per_iteration_per_rank"] + row["all_gather_bytes_per_iteration_per_rank"]
        print(f"{row['processes']:>5} {row['seconds_per_iteration']:9.4f} {base / row['seconds_per_iteration']:9.2f} "
              f"{reference / row['seconds_per_iteration']:9.2f} {row['selection_rounds']:>6} {sent:11.0f} "
              f"{row['model_bytes_per_iteration']:9d} {row['measured_over_model']:6.2f} "
              f"{row['gather_breakpoints_bytes_per_iteration'] or '-':>13}")
    names = {"frobenius": "HALS", "l1": "L1 sparse coordinate descent"}
    out = {"benchmark": f"distributed data-parallel {names[args.loss]} (gloo, local processes)",
           "machine": {"platform": platform.platform(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                       "threads_per_process": args.threads,
                       "note": "one 2-core machine; 4 processes oversubscribe 2 cores"},
           "loss": args.loss, "shape": [m, args.n], "nnz": nnz, "rank": r, "iterations": args.iters,
           "in_memory_seconds_per_iteration": reference, "rows": rows}
    name = "distributed_cpu.json" if args.loss == "frobenius" else f"distributed_{args.loss}_cpu.json"
    with open(Path(__file__).parent / "results" / name, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
