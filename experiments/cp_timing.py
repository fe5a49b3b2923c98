"""Nonnegative CPD: our NonnegativeCP (HALS) vs tensorly's non_negative_parafac_hals on CPU.

Same tensor, same random start, same number of iterations and inner sweeps (5):
wall time of each, the relative error each reaches, and the time our model needs to
reach the error tensorly reached. Also fits the bundled IL-2 tensor of
``tensorly.datasets`` (NaN = missing, handled by the mask) when it loads offline.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from _common import load_config, machine, write
from torchnmf_l1 import NonnegativeCP


def main():
    cfg = load_config("cp_timing")
    torch.set_num_threads(cfg["threads"])
    import tensorly as tl
    from tensorly.cp_tensor import CPTensor
    from tensorly.decomposition import non_negative_parafac_hals

    r, its = cfg["rank"], cfg["iterations"]
    rows = []
    for shape in cfg["shapes"]:
        g = torch.Generator().manual_seed(0)
        factors = [torch.rand(s, r, generator=g, dtype=torch.float64) for s in shape]
        with tl.backend_context("pytorch"):
            T = tl.cp_to_tensor((None, factors))
        T = T + 0.05 * T.mean() * torch.rand(T.shape, generator=g, dtype=torch.float64)
        start = [torch.rand(s, r, generator=g, dtype=torch.float64) for s in shape]
        ours_t, peer_t = [], []
        for _ in range(cfg["repeats"]):
            t0 = time.perf_counter()
            with tl.backend_context("pytorch"):
                peer = non_negative_parafac_hals(T, r, n_iter_max=its, init=CPTensor((torch.ones(r, dtype=T.dtype), [F.clone() for F in start])), tol=0)
                peer_error = float(tl.norm(T - tl.cp_to_tensor(peer)) / tl.norm(T))
            peer_t.append(time.perf_counter() - t0)
            model = NonnegativeCP(r)
            reached = {}

            def stop_at_peer(info, norm=float(T.norm())):
                if "t" not in reached and (2 * info.objective) ** 0.5 / norm <= peer_error * (1 + 1e-6):
                    reached["t"], reached["it"] = info.elapsed, info.iteration
                return False

            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = model.fit(T, factors=start, max_iter=its, tol=0, check_every=1, callbacks=[stop_at_peer])
            ours_t.append(time.perf_counter() - t0)
        row = dict(shape=shape, rank=r, iterations=its, peer_time=float(np.median(peer_t)), ours_time=float(np.median(ours_t)),
                   peer_error=peer_error, ours_error=result.extra["relative_error"],
                   ours_time_to_peer_error=reached.get("t"), ours_iterations_to_peer_error=reached.get("it"),
                   note="our time includes one objective evaluation per iteration (from the last MTTKRP, no reconstruction: unconstrained, unmasked)")
        row["speedup"] = row["peer_time"] / row["ours_time"]
        rows.append(row)
        print(f"{shape} r={r}: tensorly {row['peer_time']:.2f}s err {peer_error:.5f} | ours {row['ours_time']:.2f}s "
              f"err {row['ours_error']:.5f} (reached tensorly's error at it {reached.get('it')}, {reached.get('t')}) "
              f"speed ratio {row['speedup']:.2f}")
    real = None
    try:
        from tensorly.datasets import load_IL2data

        bunch = load_IL2data()
        X = torch.as_tensor(np.asarray(bunch.tensor, dtype=np.float64))
        missing = int(torch.isnan(X).sum())
        model = NonnegativeCP(3, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(X.clamp_min(0) if missing == 0 else torch.where(torch.isnan(X), X, X.clamp_min(0)), max_iter=300, tol=1e-7)
        real = dict(name="IL2 (tensorly.datasets.load_IL2data)", shape=list(X.shape), missing=missing, rank=3,
                    relative_error=res.extra["relative_error"], n_iter=res.n_iter,
                    dims=[str(d) for d in getattr(bunch, "dims", [])],
                    mode0_factor=model.factors[0].detach().tolist())
        print(f"IL2 {tuple(X.shape)}, {missing} missing: rank-3 nonnegative CPD relative error {real['relative_error']:.4f}")
    except Exception as exc:  # noqa: BLE001 - the data set is optional
        real = dict(skipped=f"{type(exc).__name__}: {exc}")
        print("IL2 skipped:", real["skipped"])
    path = write("cp_timing", dict(config=cfg, machine=machine(cfg["threads"]), rows=rows, real_tensor=real))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
