"""Topics on real sparse text with (weighted) L1-NMF by sCD, beside Frobenius NMF (HALS).

X = words x documents (classic, k1b, reviews from ../shared/data), each column scaled
to max 1, r = number of classes. For lambda in {0.08, 1}: words per topic (nonzeros of
each column of W), empty topics, top-10 words per topic (word indices: the .mat files
hold no vocabulary), clustering accuracy of argmax_k H[k, j] against the class ids
(best one-to-one matching of topics to classes). Also times one sCD iteration on
reviews.mat with r = 20 (target: under 2 s on CPU). Writes experiments/results/l1_topics.{json,png}.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.io
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from _l1_common import SHARED_DATA, figure_path, load_config, machine_info, plt, print_table, save
from torchnmf_l1 import NMF
from torchnmf_l1.data import prepare_data
from torchnmf_l1.init import l1_init, make_generator
from torchnmf_l1.problem import FactorState, NMFProblem, resolve_loss
from torchnmf_l1.registry import get_solver


def load_text(name):
    d = scipy.io.loadmat(SHARED_DATA / name)
    docs_words = sp.csr_matrix(d["X"] if "X" in d else d["dtm"]).astype(np.float64)
    X = docs_words.T.tocsc()  # words x documents
    col_max = np.asarray(X.max(axis=0).todense()).ravel()
    X = X @ sp.diags(1.0 / np.where(col_max > 0, col_max, 1.0))
    return sp.csr_matrix(X), np.asarray(d["classid"]).ravel().astype(int)


def accuracy(H, labels):
    clusters = np.asarray(H.argmax(0))
    classes = np.unique(labels)
    counts = np.zeros((H.shape[0], classes.size))
    for k in range(H.shape[0]):
        for c_i, c in enumerate(classes):
            counts[k, c_i] = np.sum((clusters == k) & (labels == c))
    r_idx, c_idx = linear_sum_assignment(-counts)
    return float(counts[r_idx, c_idx].sum() / labels.size)


def describe(W, H, labels):
    W = W.detach().numpy()
    H = H.detach().numpy()
    words = (W > 0).sum(0)
    empty = int(np.sum((W.max(0) == 0) | (H.max(1) == 0)))
    top = [np.argsort(-W[:, k])[:10].tolist() for k in range(W.shape[1])]
    return dict(words_per_topic=words.tolist(), empty_topics=empty, accuracy=accuracy(H, labels), top10_word_indices=top)


def benchmark(cfg):
    """Seconds per sCD iteration (L1, r = benchmark_rank) on the benchmark data, per dtype."""
    if not (SHARED_DATA / cfg["benchmark_dataset"]).exists():
        return None
    X, _ = load_text(cfg["benchmark_dataset"])
    out = []
    for dtype_name in cfg["benchmark_dtypes"]:
        dtype = getattr(torch, dtype_name)
        data = prepare_data(X, dtype=dtype)
        W, H = l1_init(data, cfg["benchmark_rank"], generator=make_generator(cfg["seed"], "cpu"))
        solver = get_solver("scd")(NMFProblem(data, resolve_loss("l1")), FactorState(W, H))
        times = []
        for _ in range(cfg["benchmark_iterations"]):
            start = time.perf_counter()
            solver.step()
            times.append(time.perf_counter() - start)
        out.append(dict(dataset=cfg["benchmark_dataset"], dtype=dtype_name, nnz=int(X.nnz), rank=cfg["benchmark_rank"],
                        seconds_per_iteration=times, best=min(times), under_2s=min(times) < 2.0,
                        threads=torch.get_num_threads(), load_average=list(os.getloadavg())))
        print(f"one sCD iteration on {cfg['benchmark_dataset']} ({dtype_name}, nnz={X.nnz}, r={cfg['benchmark_rank']}, "
              f"{torch.get_num_threads()} thread(s)): {[f'{t:.2f}' for t in times]} s")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--benchmark-only", action="store_true", help="only time sCD iterations on the benchmark data")
    args = parser.parse_args(argv)
    cfg = load_config("l1_topics", args.config)
    torch.set_num_threads(cfg["threads"])
    if args.benchmark_only:
        torch.set_num_threads(cfg.get("benchmark_threads", cfg["threads"]))
        bench = benchmark(cfg)
        save("l1_topics_benchmark", {"config": cfg, "machine": machine_info(), "benchmark": bench})
        return
    results, rows = {}, []
    for name in cfg["datasets"]:
        if not (SHARED_DATA / name).exists():
            print(f"skip {name}: not found in {SHARED_DATA}")
            continue
        X, labels = load_text(name)
        r = int(np.unique(labels).size) if cfg["rank"] == "classes" else int(cfg["rank"])
        results[name] = {"shape": list(X.shape), "nnz": int(X.nnz), "rank": r, "models": {}}
        specs = [(f"wL1 lambda={lam:g}", dict(loss="wl1", zero_weight=lam, solver="scd"), cfg["iterations_l1"])
                 for lam in cfg["lambdas"]]
        specs.append(("Frobenius (HALS)", dict(loss="frobenius", solver="hals"), cfg["iterations_hals"]))
        for label, kwargs, iters in specs:
            model = NMF(r, seed=cfg["seed"], dtype=torch.float64, **kwargs)
            start = time.perf_counter()
            result = model.fit(X, max_iter=iters, tol=0)
            info = describe(model.W, model.H, labels)
            info.update(seconds=time.perf_counter() - start, iterations=iters,
                        objective_over_sum_x=result.extra.get("objective_over_sum_x"))
            results[name]["models"][label] = info
            rows.append(dict(data=name, model=label, r=r, accuracy=info["accuracy"], empty=info["empty_topics"],
                             words_per_topic_median=float(np.median(info["words_per_topic"])), seconds=info["seconds"]))
            print_table(rows[-1:], list(rows[-1]))
            print("  top-10 word indices of topic 1:", info["top10_word_indices"][0])
    print()
    print_table(rows, list(rows[0]))
    bench = benchmark(cfg)
    save("l1_topics", {"config": cfg, "machine": machine_info(), "rows": rows, "details": results, "benchmark": bench})
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(6, 4))
    names = list(results)
    labels_m = [f"wL1 lambda={lam:g}" for lam in cfg["lambdas"]] + ["Frobenius (HALS)"]
    for i, lab in enumerate(labels_m):
        ax.bar(np.arange(len(names)) + 0.25 * i, [results[n]["models"][lab]["accuracy"] for n in names], 0.25, label=lab)
    ax.set_xticks(np.arange(len(names)) + 0.25, names), ax.set_ylabel("clustering accuracy"), ax.legend(fontsize=8)
    fig.tight_layout(), fig.savefig(figure_path("l1_topics"), dpi=120)


if __name__ == "__main__":
    main()
