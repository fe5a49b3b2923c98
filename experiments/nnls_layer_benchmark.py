"""Cost of the NNLS layer's backward modes: time of the implicit backward vs the forward solve, and memory.

1. Time (batch 1024, m = 361, r = 49, float32, CPU): the forward solve (FISTA,
   ``n_iter`` iterations, no autograd), the implicit backward (one batched r x r
   solve on the free sets) and the unrolled backward (autograd through the
   iterations), medians over ``--repeats`` runs. Target: implicit backward <= 2x forward.
2. Memory at 10, 100, 1000 iterations: bytes of the tensors autograd saves for
   the backward, counted with ``torch.autograd.graph.saved_tensors_hooks`` (each
   storage counted once, so views such as W^T do not count twice). The pack hook
   keeps each saved storage alive until the count is done (as the graph would), so
   that a freed address reused by a later tensor is not mistaken for a counted one. ``tracemalloc`` does not see torch's allocator, which is why this count is
   used on the CPU; it is the memory that the graph holds between forward and
   backward, the part that grows with ``n_iter``.

Inputs are CBCL faces (``../shared/data/CBCL.mat``, columns as rows of x) with a
dictionary from a 30-iteration HALS fit, or generated data when the file is absent.
Writes ``experiments/results/nnls_layer_benchmark.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from torchnmf_l1 import NMF
from torchnmf_l1.models.layers import nnls_codes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "CBCL.mat"


def load_inputs(batch: int, rank: int, dtype):
    if DATA.exists():
        import scipy.io

        X = torch.as_tensor(scipy.io.loadmat(DATA)["X"], dtype=dtype)  # 361 x 2429
        source = "CBCL.mat"
    else:
        g = torch.Generator().manual_seed(0)
        X = torch.rand(361, rank, generator=g, dtype=dtype) @ torch.rand(rank, 2429, generator=g, dtype=dtype)
        source = "generated (CBCL.mat absent)"
    model = NMF(rank, solver="hals", seed=0, dtype=dtype)
    model.fit(X, max_iter=30, tol=0)
    W = model.W.detach().clone()
    x = X[:, :batch].T.contiguous()
    return x, W, source


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_modes(x, W, n_iter, repeats):
    def forward_only():
        with torch.no_grad():
            nnls_codes(x, W, n_iter=n_iter, validate=False)

    row = {"n_iter": n_iter, "forward_s": timed(forward_only, repeats)}
    weights = torch.randn(x.shape[0], W.shape[1], generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    for backward in ("implicit", "unrolled"):
        xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
        fwd, bwd = [], []
        for _ in range(repeats):
            xr.grad = Wr.grad = None
            start = time.perf_counter()
            loss = (nnls_codes(xr, Wr, backward=backward, n_iter=n_iter, validate=False) * weights).sum()
            middle = time.perf_counter()
            loss.backward()
            fwd.append(middle - start)
            bwd.append(time.perf_counter() - middle)
        row[f"{backward}_forward_s"] = statistics.median(fwd)
        row[f"{backward}_backward_s"] = statistics.median(bwd)
    row["implicit_backward_over_forward"] = row["implicit_backward_s"] / row["forward_s"]
    row["unrolled_backward_over_forward"] = row["unrolled_backward_s"] / row["forward_s"]
    return row


def saved_bytes(x, W, backward, n_iter):
    kept, total = {}, [0]

    def pack(t):
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key not in kept:
            # hold the storage, as the graph would: a freed storage's address can be reused,
            # which would make a later tensor look like one already counted
            kept[key] = storage
            total[0] += storage.nbytes()
        return None  # the unpack side is never used: no backward is run

    xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda _: None):
        nnls_codes(xr, Wr, backward=backward, n_iter=n_iter, validate=False)
    return total[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=49)
    parser.add_argument("--iters", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--memory-iters", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "experiments" / "results" / "nnls_layer_benchmark.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.float32
    x, W, source = load_inputs(args.batch, args.rank, dtype)
    with torch.no_grad():
        h = nnls_codes(x, W, n_iter=100, validate=False)
    active_fraction = float((h == 0).to(dtype).mean())

    timing = [time_modes(x, W, n, args.repeats) for n in args.iters]
    print(f"time, batch {args.batch}, m {x.shape[1]}, r {args.rank}, float32, {args.threads} threads ({source}); "
          f"fraction of zero codes at 100 iterations: {active_fraction:.2f}")
    print(f"{'n_iter':>7} {'forward':>9} {'impl.bwd':>9} {'ratio':>6} {'unr.fwd':>9} {'unr.bwd':>9} {'ratio':>6}")
    for r in timing:
        print(f"{r['n_iter']:>7} {r['forward_s']*1e3:>7.1f}ms {r['implicit_backward_s']*1e3:>7.1f}ms "
              f"{r['implicit_backward_over_forward']:>6.2f} {r['unrolled_forward_s']*1e3:>7.1f}ms "
              f"{r['unrolled_backward_s']*1e3:>7.1f}ms {r['unrolled_backward_over_forward']:>6.2f}")

    memory = []
    for n in args.memory_iters:
        row = {"n_iter": n}
        for backward in ("implicit", "unrolled"):
            row[f"{backward}_saved_bytes"] = saved_bytes(x, W, backward, n)
        memory.append(row)
    print("\nbytes saved for backward (saved_tensors_hooks, each storage once)")
    print(f"{'n_iter':>7} {'implicit':>12} {'unrolled':>14}")
    for r in memory:
        print(f"{r['n_iter']:>7} {r['implicit_saved_bytes']/2**20:>10.2f}MiB {r['unrolled_saved_bytes']/2**20:>12.2f}MiB")

    out = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "note": "shared machine (2 cores, several helpers running at once): timings are contended",
        },
        "settings": {"batch": args.batch, "m": x.shape[1], "rank": args.rank, "dtype": "float32", "solver": "pg (FISTA)",
                     "data": source, "repeats": args.repeats, "zero_code_fraction": active_fraction},
        "timing": timing,
        "memory_method": "torch.autograd.graph.saved_tensors_hooks: sum of nbytes of every distinct storage saved for backward",
        "memory": memory,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
