"""Benchmark: KL multiplicative updates on large sparse count matrices, against scikit-learn.

On the document-term matrices of ``../shared/data`` (reviews 4069 x 18483 with 758,635
nonzeros, classic 7094 x 41681, k1b 2340 x 21839; raw counts, documents x words), rank
r (20 and 4 by default), float64, both libraries from the same start (uniform in
[0, sqrt(mean X / r)), seed 0), same thread count:

* seconds per iteration: ours the median of timed ``step()`` calls after a warm-up;
  scikit-learn's ``solver="mu", beta_loss="kullback-leibler"`` the difference of two fits
  of ``a`` and ``b`` iterations divided by ``b - a`` (its setup cancels);
* the KL objective of both after the same number of iterations (the two are the same
  iteration: Lee and Seung's MU with exponent 1, so the objectives agree to rounding),
  and the time of each whole fit of that many iterations, setup included (``speedup_to_same_objective``);
* the bytes of our per-iteration temporaries, stated per solver update: for one update of
  H, WH on the nonzeros (nnz s), the ratio X / WH (nnz s), the CSR copy of its pattern
  for the transposed product (nnz s), and the r x n product (r n s); nothing m x n.
  ``wh_on_support`` is one sampled dense-dense product (``torch.sparse.sampled_addmm``)
  on the CSR pattern of X, with no (nnz x r) temporary.

Writes ``experiments/results/bench_sparse.json``. Run:
``python experiments/bench_sparse.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_frobenius.py

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write  # noqa: E402
from torchnmf_l1.data import prepare_data  # noqa: E402
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss  # noqa: E402
from torchnmf_l1.registry import get_solver  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


def load_counts(name: str) -> sp.csr_matrix:
    d = scipy.io.loadmat(SHARED_DATA / f"{name}.mat")
    X = sp.csr_matrix(d["X"] if "X" in d else d["dtm"]).astype(np.float64)
    X.eliminate_zeros()
    X.sort_indices()
    return X


def start(X: sp.csr_matrix, rank: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    scale = np.sqrt(X.mean() / rank)
    return rng.random((X.shape[0], rank)) * scale, rng.random((rank, X.shape[1])) * scale


def kl(X: sp.csr_matrix, W: np.ndarray, H: np.ndarray) -> float:
    coo = X.tocoo()
    wh = np.einsum("ij,ji->i", W[coo.row], H[:, coo.col])
    return float(np.sum(coo.data * np.log(coo.data / wh)) - X.sum() + (W.sum(0) @ H.sum(1)))


def to_torch(X: sp.csr_matrix) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)), torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(X.data), X.shape,
        )


def ours(X, W0, H0, iterations, warmup=2):
    setup = time.perf_counter()
    data = prepare_data(to_torch(X))
    problem = NMFProblem(data, resolve_loss("kl"))
    solver = get_solver("mu")(problem, FactorState(torch.from_numpy(W0.copy()), torch.from_numpy(H0.copy())))
    setup = time.perf_counter() - setup
    times = []
    with torch.no_grad():
        for k in range(iterations):
            t = time.perf_counter()
            solver.step()
            times.append(time.perf_counter() - t)
    W, H = solver.state.W.numpy(), solver.state.H.numpy()
    return dict(seconds_per_iteration=statistics.median(times[warmup:]), total_seconds=setup + sum(times),
                objective=kl(X, W, H))


def sklearn_mu(X, W0, H0, iterations, short=2):
    from sklearn.decomposition import non_negative_factorization

    def fit(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            W, H, _ = non_negative_factorization(
                X, W=W0.copy(), H=H0.copy(), n_components=W0.shape[1], init="custom", solver="mu",
                beta_loss="kullback-leibler", tol=0, max_iter=k,
            )
            return time.perf_counter() - t, W, H

    t_short, _, _ = fit(short)
    t_long, W, H = fit(iterations)
    return dict(seconds_per_iteration=(t_long - t_short) / (iterations - short), total_seconds=t_long,
                objective=kl(X, W, H))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["reviews", "classic", "k1b"])
    parser.add_argument("--ranks", type=int, nargs="+", default=[20, 4])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="bench_sparse")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not SHARED_DATA.exists():
        raise SystemExit(f"the data sets are not at {SHARED_DATA} (../shared/data beside the repository)")
    rows = []
    for name in args.datasets:
        X = load_counts(name)
        for rank in args.ranks:
            W0, H0 = start(X, rank)
            theirs = sklearn_mu(X, W0, H0, args.iterations)
            mine = ours(X, W0, H0, args.iterations)
            row = dict(
                dataset=name, shape=list(X.shape), nnz=int(X.nnz), rank=rank, iterations=args.iterations,
                ours_seconds_per_iteration=mine["seconds_per_iteration"],
                sklearn_seconds_per_iteration=theirs["seconds_per_iteration"],
                speedup_per_iteration=theirs["seconds_per_iteration"] / mine["seconds_per_iteration"],
                ours_objective=mine["objective"], sklearn_objective=theirs["objective"],
                objective_relative_difference=abs(mine["objective"] - theirs["objective"]) / abs(theirs["objective"]),
                ours_total_seconds=mine["total_seconds"], sklearn_total_seconds=theirs["total_seconds"],
                speedup_to_same_objective=theirs["total_seconds"] / mine["total_seconds"],
                temporaries_bytes_per_update=3 * X.nnz * 8 + rank * max(X.shape) * 8,
            )
            rows.append(row)
            print(f"{name:8s} r={rank:2d}  ours {row['ours_seconds_per_iteration'] * 1e3:7.1f} ms/it  "
                  f"sklearn {row['sklearn_seconds_per_iteration'] * 1e3:7.1f} ms/it  "
                  f"x{row['speedup_per_iteration']:.2f}  objectives {row['ours_objective']:.6e} / "
                  f"{row['sklearn_objective']:.6e}  to same objective x{row['speedup_to_same_objective']:.2f}",
                  flush=True)
    path = write(args.output, dict(machine=machine(args.threads), rows=rows, description=__doc__))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
