"""Subsampled separable NMF ("-k" variants): the authors' weighting of the representatives against ours.

The "-k" variants cluster the pixels into k groups with H2NMF and select among one
representative per cluster. Gillis and Luce's demo scales the representatives by the square
root of their cluster sizes for FGNSR only and runs SPA, SNPA, XRAY, VCA and H2NMF on the
plain representatives (``subsample_scaling="authors"``, the default); before, this package
scaled them for every method (``"sqrt-size"``). For Urban (r = 6, 8) and Moffett (r = 3, 4),
k = 100 and 500, every method with both weightings: the relative error
100 ||M - M(:, K) H|| / ||M|| (H by the same NNLS on all pixels) and the selected columns K.
The H2NMF clustering is the authors' (rank-two columns clipped at 0, NNLS on the cluster).

Usage: python experiments/separable_subsample_scaling.py
Writes experiments/results/separable_subsample_scaling.json and prints a table.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see separable_experiments.py

import torch  # noqa: E402

from _l1_common import machine_info, print_table, save  # noqa: E402
from separable_experiments import load  # noqa: E402
from torchnmf_l1 import SeparableNMF  # noqa: E402

DATASETS = {"urban": ("urban_undersampled4.mat", "M", (162, 5929), (6, 8)),
            "moffett": ("Moffet.mat", "X", (159, 2500), (3, 4))}
METHODS = ("spa", "snpa", "xray", "vca", "h2nmf", "fgnsr")
SUBSAMPLES = (100, 500)
FGNSR_ITERATIONS = 300


def main():
    torch.set_num_threads(2)
    rows = []
    for name, (file, variable, fallback, ranks) in DATASETS.items():
        M, source = load(file, variable, fallback)
        for rank in ranks:
            for k in SUBSAMPLES:
                for method in METHODS:
                    row = dict(data=name, source=source, rank=rank, k=k, method=method)
                    for scaling in ("authors", "sqrt-size"):
                        model = SeparableNMF(rank, method, subsample=k, subsample_scaling=scaling, seed=0,
                                             dtype=torch.float64)
                        start = time.perf_counter()
                        options = {"max_iter": FGNSR_ITERATIONS, "warn": False} if method == "fgnsr" else {}
                        result = model.fit(M, **options)
                        row[f"error_{scaling}"] = 100 * result.extra["relative_error"]
                        row[f"K_{scaling}"] = sorted(int(i) for i in result.extra["indices"])
                        row[f"seconds_{scaling}"] = time.perf_counter() - start
                    row["same_K"] = row["K_authors"] == row["K_sqrt-size"]
                    rows.append(row)
                    print_table(rows[-1:], ["data", "rank", "k", "method", "error_authors", "error_sqrt-size", "same_K"])
    print()
    print_table(rows, ["data", "rank", "k", "method", "error_authors", "error_sqrt-size", "same_K"])
    scaled = [r for r in rows if r["method"] != "fgnsr"]
    summary = {
        "sqrt_size_lower_error": sum(r["error_sqrt-size"] < r["error_authors"] - 1e-9 for r in scaled),
        "authors_lower_error": sum(r["error_authors"] < r["error_sqrt-size"] - 1e-9 for r in scaled),
        "cases": len(scaled),
        "by_method": {m: {"sqrt_size_lower": sum(r["error_sqrt-size"] < r["error_authors"] - 1e-9
                                                 for r in scaled if r["method"] == m),
                          "cases": sum(r["method"] == m for r in scaled)} for m in METHODS if m != "fgnsr"},
    }
    print(summary)
    save("separable_subsample_scaling", {"machine": machine_info("cpu"), "fgnsr_iterations": FGNSR_ITERATIONS,
                                         "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
