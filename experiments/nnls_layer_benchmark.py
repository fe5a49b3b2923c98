"""Cost of the NNLS layer's backward modes: time of the implicit backward vs the forward solve, and memory.

1. Time (batch 1024, m = 361, r = 49, float32, CPU): the forward solve (FISTA,
   ``n_iter`` iterations, no autograd), the implicit backward (one batched r x r
   solve on the free sets) and the unrolled backward (autograd through the
   iterations), interleaved in each of ``--repeats`` rounds; minimum and median kept. Target: implicit backward <= 2x forward.
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


def time_modes(x, W, n_iter, repeats):
    """Interleaved timings (forward only, implicit fwd/bwd, unrolled fwd/bwd in each repeat), so that
    the load of a shared machine affects every mode alike; the minimum and the median are kept."""
    weights = torch.randn(x.shape[0], W.shape[1], generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
    samples = {k: [] for k in ("forward", "implicit_forward", "implicit_backward", "unrolled_forward", "unrolled_backward")}
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        start = time.perf_counter()
        with torch.no_grad():
            nnls_codes(x, W, n_iter=n_iter, validate=False)
        forward = time.perf_counter() - start
        round_ = {"forward": forward}
        for backward in ("implicit", "unrolled"):
            xr.grad = Wr.grad = None
            start = time.perf_counter()
            loss = (nnls_codes(xr, Wr, backward=backward, n_iter=n_iter, validate=False) * weights).sum()
            middle = time.perf_counter()
            loss.backward()
            round_[f"{backward}_forward"] = middle - start
            round_[f"{backward}_backward"] = time.perf_counter() - middle
        if _ > 0:
            for k, v in round_.items():
                samples[k].append(v)
    row = {"n_iter": n_iter}
    for k, v in samples.items():
        row[f"{k}_s_min"] = min(v)
        row[f"{k}_s_median"] = statistics.median(v)
    for backward in ("implicit", "unrolled"):
        row[f"{backward}_backward_over_forward_min"] = row[f"{backward}_backward_s_min"] / row["forward_s_min"]
        row[f"{backward}_backward_over_forward_median"] = row[f"{backward}_backward_s_median"] / row["forward_s_median"]
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
    print("minimum over repeats (median ratio in brackets)")
    print(f"{'n_iter':>7} {'forward':>9} {'impl.bwd':>9} {'ratio':>13} {'unr.fwd':>9} {'unr.bwd':>9} {'ratio':>13}")
    for r in timing:
        print(f"{r['n_iter']:>7} {r['forward_s_min']*1e3:>7.1f}ms {r['implicit_backward_s_min']*1e3:>7.1f}ms "
              f"{r['implicit_backward_over_forward_min']:>6.2f} ({r['implicit_backward_over_forward_median']:.2f}) "
              f"{r['unrolled_forward_s_min']*1e3:>7.1f}ms {r['unrolled_backward_s_min']*1e3:>7.1f}ms "
              f"{r['unrolled_backward_over_forward_min']:>6.2f} ({r['unrolled_backward_over_forward_median']:.2f})")

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
