"""Tables 7.3 and 7.4 of the L1-NMF paper: topics by wL1-NMF and Frobenius NMF.

The paper's protocol (Seraghiti, Gillis et al., arXiv 2603.29715, tests/Table_7_3_4.jl,
run there on TDT2, which ../shared/data does not hold): X = words x documents with each
column scaled to max 1; r = 30; one start (uniform, least-squares scaled, balanced);
Frobenius NMF = 20 HALS iterations from it; wL1-NMF = 3 sCD iterations (lambda in {0.08,
1}) from 3 HALS iterations. Per model: the words per topic (mean over topics of the number
of entries of W[:, k] above 1e-5), the null topics (sum(W[:, k]) <= 5), the top-10 words
(word indices: the files hold no vocabulary), the seconds per sCD iteration, and, ours
beside the paper's numbers, the clustering accuracy of argmax_k H[k, j] against the
documents' classes (best one-to-one matching). On classic, k1b and reviews. Writes
experiments/results/l1_tables_7_3_4.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.io
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from _l1_common import SHARED_DATA, load_config, machine_info, paper_start, print_table, save
from torchnmf_l1 import NMF


def load_text(name):
    d = scipy.io.loadmat(SHARED_DATA / name)
    docs_words = sp.csr_matrix(d["X"] if "X" in d else d["dtm"]).astype(np.float64)
    X = docs_words.T.tocsc()  # words x documents
    col_max = np.asarray(X.max(axis=0).todense()).ravel()
    X = X @ sp.diags(1.0 / np.where(col_max > 0, col_max, 1.0))  # the paper's preprocessing
    return sp.csr_matrix(X), np.asarray(d["classid"]).ravel().astype(int)


def accuracy(H, labels):
    clusters = H.argmax(0)
    classes = np.unique(labels)
    counts = np.array([[np.sum((clusters == k) & (labels == c)) for c in classes] for k in range(H.shape[0])])
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / labels.size)


def describe(W, H, labels, cfg):
    words = (W > cfg["word_threshold"]).sum(0)
    top = [np.argsort(-W[:, k], kind="stable")[: min(cfg["top_words"], int(words[k]))].tolist() for k in range(W.shape[1])]
    return {"words per topic": float(words.mean()), "null topics": int(np.sum(W.sum(0) <= cfg["null_topic_mass"])),
            "accuracy": accuracy(H, labels), "top words": top}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    cfg = load_config("l1_tables_7_3_4", args.config)
    torch.set_num_threads(cfg["threads"])
    rows, details = [], {}
    for name in cfg["datasets"]:
        if not (SHARED_DATA / name).exists():
            print(f"skip {name}: not found in {SHARED_DATA}")
            continue
        X, labels = load_text(name)
        r = cfg["rank"]
        W0, H0 = paper_start(X, r, seed=cfg["seed"], hals_iter=0)
        frobenius = NMF(r, solver="hals", dtype=torch.float64)
        frobenius.fit(X, W=W0, H=H0, max_iter=cfg["iterations_hals"], tol=0, warn=False, threads=cfg["threads"])
        models = {"Frobenius (HALS)": (frobenius.W.detach().numpy(), frobenius.H.detach().numpy(), None)}
        start = NMF(r, solver="hals", dtype=torch.float64)
        start.fit(X, W=W0, H=H0, max_iter=cfg["iterations_hals_start"], tol=0, warn=False)
        for lam in cfg["lambdas"]:
            loss = dict(loss="l1") if lam == 1.0 else dict(loss="wl1", zero_weight=lam)
            model = NMF(r, solver="scd", dtype=torch.float64, **loss)
            begin = time.perf_counter()
            model.fit(X, W=start.W.detach(), H=start.H.detach(), max_iter=cfg["iterations_l1"], tol=0, warn=False,
                      threads=cfg["threads"])
            seconds = (time.perf_counter() - begin) / cfg["iterations_l1"]
            models[f"wL1 lambda={lam:g}"] = (model.W.detach().numpy(), model.H.detach().numpy(), seconds)
        details[name] = {}
        for label, (W, H, seconds) in models.items():
            info = describe(W, H, labels, cfg)
            details[name][label] = {**info, "seconds per iteration": seconds}
            rows.append({"data": name, "model": label, "words per topic": info["words per topic"],
                         "null topics": info["null topics"], "accuracy": info["accuracy"],
                         "s / iteration": seconds if seconds is not None else "-",
                         "shape": f"{X.shape[0]}x{X.shape[1]}", "nnz": X.nnz})
            print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, list(rows[0]))
    save("l1_tables_7_3_4", {
        "paper_setting": "Tables 7.3/7.4 on TDT2 (19528 x 9394, 30 topics): r = 30, lambda in {0.08, 1}, 3 sCD "
                         "iterations from 3 HALS, FroNMF 20 HALS; words per topic (W > 1e-5), null topics (sum <= 5)",
        "our_setting": f"the same protocol on {', '.join(cfg['datasets'])} (TDT2 is not in ../shared/data), "
                       f"{cfg['threads']} threads; accuracy: ours, not in the paper",
        "config": cfg, "machine": machine_info("cpu"), "rows": rows, "details": details,
    })


if __name__ == "__main__":
    main()
