"""Data-parallel Frobenius NMF over P gloo processes on this machine.

For P in --procs (default 1 2 4) the script starts P local processes (127.0.0.1, a free
port; or run one configuration under ``torchrun --nproc-per-node=P``). Every rank builds
its columns of the same synthetic m x n float32 matrix, runs --iters outer iterations
and records the wall time per iteration (the slowest rank) and the bytes it passed to
all_reduce (counted by DistributedNMFSolver.bytes_all_reduced), against the model
m r + r^2 floats per iteration (plus one scalar per objective evaluation).

Usage: python experiments/distributed_benchmark.py [--procs 1 2 4] [--rows 200 --cols 200000 --rank 10]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from torchnmf_l1.distributed import DistributedNMFSolver, column_range, init_distributed  # noqa: E402


def worker(args):
    torch.set_num_threads(args.threads)
    rank, world = init_distributed("gloo", timeout=120.0)
    a, b = column_range(args.n, world, rank)
    g = torch.Generator().manual_seed(0)
    W_true = torch.rand(args.m, args.rank, generator=g)
    gh = torch.Generator().manual_seed(1000 + rank)
    X = W_true @ torch.rand(args.rank, b - a, generator=gh)
    W = torch.rand(args.m, args.rank, generator=torch.Generator().manual_seed(1))
    H = torch.rand(args.rank, b - a, generator=gh)
    solver = DistributedNMFSolver(X, W, H)
    solver.step()  # warm-up
    solver.bytes_all_reduced = 0
    dist.barrier()
    t = time.perf_counter()
    for _ in range(args.iters):
        solver.step()
    dist.barrier()
    elapsed = time.perf_counter() - t
    stats = torch.tensor([elapsed, float(solver.bytes_all_reduced)], dtype=torch.float64)
    gathered = [torch.zeros(2, dtype=torch.float64) for _ in range(world)]
    dist.all_gather(gathered, stats)
    if rank == 0:
        with open(args.result, "w") as f:
            json.dump({"seconds": [float(s[0]) for s in gathered], "bytes": [float(s[1]) for s in gathered]}, f)
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
               "--iters", str(args.iters), "--threads", str(args.threads), "--result", result]
        procs.append(subprocess.Popen(cmd, env=env))
    for p in procs:
        if p.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker exited with {p.returncode}")
    with open(result) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--rows", dest="m", type=int, default=200)
    p.add_argument("--cols", dest="n", type=int, default=200_000)
    p.add_argument("--rank", type=int, default=10)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", action="store_true")
    p.add_argument("--result", default="/tmp/torchnmf_l1_dist_result.json")
    args = p.parse_args()
    if args.worker or "TORCHELASTIC_RUN_ID" in os.environ:
        worker(args)
        return
    rows = []
    model_bytes = (args.m * args.rank + args.rank**2) * 4
    for world in args.procs:
        r = launch(args, world, args.result)
        per_iter = max(r["seconds"]) / args.iters
        measured = r["bytes"][0] / args.iters
        rows.append({"processes": world, "seconds_per_iteration": per_iter,
                     "all_reduce_bytes_per_iteration_per_rank": measured,
                     "model_bytes_per_iteration": model_bytes, "measured_over_model": measured / model_bytes})
    base = rows[0]["seconds_per_iteration"]
    print(f"X {args.m} x {args.n} float32, rank {args.rank}, {args.iters} iterations, {args.threads} thread(s) per process")
    print(f"{'procs':>5} {'s/iter':>9} {'speed-up':>9} {'bytes/iter':>11} {'model':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['processes']:>5} {row['seconds_per_iteration']:9.4f} {base / row['seconds_per_iteration']:9.2f} "
              f"{row['all_reduce_bytes_per_iteration_per_rank']:11.0f} {row['model_bytes_per_iteration']:9d} "
              f"{row['measured_over_model']:6.2f}")
    out = {"benchmark": "distributed data-parallel HALS (gloo, local processes)",
           "machine": {"platform": platform.platform(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                       "threads_per_process": args.threads,
                       "note": "one shared 2-core machine, other jobs running; 4 processes oversubscribe 2 cores"},
           "shape": [args.m, args.n], "rank": args.rank, "iterations": args.iters, "rows": rows}
    with open(Path(__file__).parent / "results" / "distributed_cpu.json", "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
