"""Low-rank sparse component analysis (``LRSCA``): planted supports, then Urban with R = 6, k = 2.

Synthetic part: W (m x R) uniform, every column of H with k nonzeros (uniform in [0.1, 1.1))
at a random support; X = WH (+ noise). For each (R, k, n) of the config and each of 20
seeds: whether the planted (W, H) meets the sufficient identifiability condition of
Cohen and Gillis (``sparse_identifiability``), and whether ``LRSCA(R, k, n_init=10)``
recovers it: the columns of W matched to the planted ones (Hungarian on cosines) and the
support of every column of H exact ("exact recovery"), with the smallest cosine of the
matched columns (the median over the seeds) and the mean fraction of columns whose support
is exact.

Urban part (162 bands x 5929 pixels): relative errors 100 ||M - WH||_F / ||M||_F of
LRSCA (k = 2), of plain NMF (HALS, no sparsity), of SNPA (separable NMF, H by NNLS) and
of the k-sparse codes of the NMF and SNPA bases; the abundance maps of LRSCA are drawn
to experiments/results/lrsca_urban.png. Prints the tables and writes
experiments/results/lrsca.json.
"""

from __future__ import annotations

import time
import warnings

import scipy.io
import scipy.optimize
import torch

from _common import RESULTS, ROOT, load_config, machine, write
from torchnmf_l1 import LRSCA, NMF, ConvergenceWarning, SeparableNMF, ksparse_nnls, sparse_identifiability

F64 = torch.float64


def planted(seed, m, R, k, n, noise):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, R, generator=g, dtype=F64)
    H = torch.zeros(R, n, dtype=F64)
    for j in range(n):
        H[torch.randperm(R, generator=g)[:k], j] = 0.1 + torch.rand(k, generator=g, dtype=F64)
    X = W @ H
    if noise:
        N = torch.rand(X.shape, generator=g, dtype=F64)
        X = X + noise * float(torch.linalg.norm(X)) / float(torch.linalg.norm(N)) * N
    return W, H, X


def compare(W_true, H_true, W, H):
    C = torch.nn.functional.normalize(W_true, dim=0).T @ torch.nn.functional.normalize(W, dim=0)
    rows, cols = scipy.optimize.linear_sum_assignment(-C.numpy())
    columns_exact = ((H[cols] != 0) == (H_true[rows] != 0)).all(dim=0)
    return float(C[rows, cols].min()), float(columns_exact.double().mean())


def synthetic(cfg):
    rows = []
    print(f"{'R':>2} {'k':>2} {'n':>4} {'noise':>6} {'cond met':>8} {'exact rec':>9} {'cols exact':>10} {'min cos':>9} {'med err %':>9} {'s/fit':>6}")
    for R, k, n, noise in cfg["synthetic"]:
        met = recovered = 0
        column_rates, errors, times, cosines = [], [], [], []
        for seed in range(cfg["seeds"]):
            W_true, H_true, X = planted(seed, cfg["m"], R, k, n, noise)
            met += sparse_identifiability(W_true, H_true).condition_met
            model = LRSCA(R, k, n_init=cfg["n_init"], seed=seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X)
            times.append(time.perf_counter() - start)
            cosine, rate = compare(W_true, H_true, model.W.detach(), model.H.detach())
            recovered += rate == 1.0
            column_rates.append(rate)
            cosines.append(cosine)
            errors.append(100 * model.start_errors_[model.best_])
        row = dict(R=R, k=k, n=n, noise=noise, seeds=cfg["seeds"], condition_met=met, exact_recovery=recovered,
                   mean_columns_exact=sum(column_rates) / len(column_rates),
                   median_min_cosine=sorted(cosines)[len(cosines) // 2],
                   median_error_percent=sorted(errors)[len(errors) // 2], median_seconds=sorted(times)[len(times) // 2])
        rows.append(row)
        print(f"{R:2d} {k:2d} {n:4d} {noise:6.2f} {met:5d}/{cfg['seeds']} {recovered:6d}/{cfg['seeds']} "
              f"{row['mean_columns_exact']:10.3f} {row['median_min_cosine']:9.6f} {row['median_error_percent']:9.2e} {row['median_seconds']:6.2f}")
    return rows


def urban(cfg):
    path = ROOT / cfg["data"]
    if path.exists():
        M = torch.as_tensor(scipy.io.loadmat(path)["M"].astype("float64"))
        source = str(cfg["data"])
    else:  # a synthetic scene of 2-sparse mixtures when the data set is absent
        _, _, M = planted(0, 162, cfg["urban_rank"], cfg["urban_k"], cfg["image_side"] ** 2, 0.01)
        source = "synthetic (Urban absent)"
    R, k = cfg["urban_rank"], cfg["urban_k"]
    norm = float(torch.linalg.norm(M))
    rows = []

    def add(name, W, H, seconds, note=""):
        error = 100 * float(torch.linalg.norm(M - W @ H)) / norm
        nonzeros = int((H != 0).sum(dim=0).max())
        rows.append(dict(method=name, error_percent=error, seconds=seconds, max_nonzeros_per_pixel=nonzeros, note=note))
        print(f"{name:34s} {error:8.3f} {nonzeros:6d} {seconds:8.2f}  {note}")

    print(f"{'method':34s} {'err %':>8} {'nnz':>6} {'s':>8}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model = LRSCA(R, k, n_init=cfg["n_init"], seed=0)
        model.fit(M)
        seconds = time.perf_counter() - start
        add(f"LRSCA k={k}, {cfg['n_init']} starts", model.W.detach(), model.H.detach(), seconds,
            f"starts {min(model.start_errors_) * 100:.2f}..{max(model.start_errors_) * 100:.2f} %")
        start = time.perf_counter()
        nmf = NMF(R, seed=0, dtype=F64)
        nmf.fit(M, max_iter=1000, tol=1e-6)
        add("NMF (HALS), no sparsity", nmf.W.detach(), nmf.H.detach(), time.perf_counter() - start)
        start = time.perf_counter()
        codes = ksparse_nnls(nmf.W.detach(), M, k)
        add(f"NMF basis + {k}-sparse codes", nmf.W.detach(), codes, time.perf_counter() - start)
        start = time.perf_counter()
        snpa = SeparableNMF(R, solver="snpa")
        snpa.fit(M)
        add("SNPA (separable), NNLS codes", snpa.W.detach(), snpa.H.detach(), time.perf_counter() - start)
        start = time.perf_counter()
        codes = ksparse_nnls(snpa.W.detach(), M, k)
        add(f"SNPA basis + {k}-sparse codes", snpa.W.detach(), codes, time.perf_counter() - start)
        start = time.perf_counter()
        from_snpa = LRSCA(R, k, init=snpa.W.detach(), n_init=1)
        from_snpa.fit(M)
        add(f"LRSCA k={k} from SNPA's basis", from_snpa.W.detach(), from_snpa.H.detach(), time.perf_counter() - start)
    report = model.identifiability()
    print(f"identifiability of the LRSCA fit: condition met = {report.condition_met}; {report.reason}")
    figure = None
    side = cfg["image_side"]
    if M.shape[1] == side * side:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            plt = None
        if plt is not None:
            fig, axes = plt.subplots(1, R, figsize=(2.2 * R, 2.4))
            H = model.H.detach()
            for i, ax in enumerate(axes):
                ax.imshow(H[i].reshape(side, side).T.numpy(), cmap="gray")  # MATLAB's column-major pixels
                ax.set_title(f"component {i + 1}", fontsize=8)
                ax.axis("off")
            fig.suptitle(f"Urban: LRSCA abundance maps (R = {R}, k = {k})", fontsize=9)
            fig.tight_layout()
            figure = RESULTS / "lrsca_urban.png"
            fig.savefig(figure, dpi=110)
            plt.close(fig)
    return dict(data=source, shape=list(M.shape), rows=rows, figure=None if figure is None else figure.name,
                identifiability=dict(condition_met=report.condition_met, reason=report.reason,
                                     required=report.required, largest_possible=report.largest_possible))


def main():
    cfg = load_config("lrsca")
    torch.set_num_threads(cfg["threads"])
    payload = dict(config=cfg, machine=machine(cfg["threads"]))
    payload["synthetic"] = synthetic(cfg)
    payload["urban"] = urban(cfg)
    print(f"wrote {write('lrsca', payload)}")


if __name__ == "__main__":
    main()
