"""Dictionary NMF on Urban: the authors' NMFdico against this package's proximal solver.

The image is its own dictionary (Urban, 162 x 5929). For each separable start X (SPA, SNPA,
H2NMF, FGNSR-500) and rank (6, 8), both solvers start from the same atoms K0 (the same
seeded separable fit): ``solver="proximal"`` (unit-norm U and atoms, V fitted with U, distinct
atoms by an assignment, the Frobenius gap, at most 200 iterations) and ``solver="nmfdico"``
(Cohen and Gillis's MATLAB NMFdico: 10 accelerated HALS iterations first, the raw atoms as the
proximal target, V fitted with D(:, K), the spectral-norm gap, a stop after 5 unchanged
iterations, at most 30). Errors are 100 ||M - M(:,K) H||_F / ||M||_F with the shared final
H = argmin ||M - M(:,K) H||. The authors' errors reported in issue 20 (d-H2NMF r = 6: 4.30).

Usage: python experiments/dictionary_variants.py   (about 5 minutes on 2 cores)
Writes experiments/results/dictionary_variants.json and prints a table.
"""

from __future__ import annotations

import os
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see separable_experiments.py

import torch  # noqa: E402

from _l1_common import machine_info, print_table, save  # noqa: E402
from separable_experiments import load  # noqa: E402
from torchnmf_l1 import DictionaryNMF  # noqa: E402

STARTS = [("spa", {}), ("snpa", {}), ("h2nmf", {}), ("fgnsr", {"subsample": 500})]
RANKS = (6, 8)
SOLVERS = ("proximal", "nmfdico")


def main():
    torch.set_num_threads(2)
    M, source = load("urban_undersampled4.mat", "M", (162, 5929))
    rows = []
    columns = ["start", "rank", "init_error", "proximal", "nmfdico", "proximal_s", "nmfdico_s", "same_K"]
    for method, options in STARTS:
        for rank in RANKS:
            row = dict(start=method + ("-500" if options else ""), rank=rank, source=source)
            for solver in SOLVERS:
                model = DictionaryNMF(rank, dictionary=M, init=method, init_options=options, seed=0, solver=solver)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = model.fit(M)
                row[f"{solver}_s"] = time.perf_counter() - start
                row[solver] = 100 * result.extra["relative_error"]
                row[f"{solver}_K"] = sorted(model.indices.tolist())
                row[f"{solver}_iterations"] = result.n_iter
                row["init_error"] = 100 * result.extra["init_relative_error"]
                row["init_K"] = sorted(result.extra["init_indices"])
            row["same_K"] = row["proximal_K"] == row["nmfdico_K"]
            rows.append(row)
            print_table(rows[-1:], columns)
    print()
    print_table(rows, columns)
    summary = dict(nmfdico_lower=sum(r["nmfdico"] < r["proximal"] - 1e-9 for r in rows),
                   proximal_lower=sum(r["proximal"] < r["nmfdico"] - 1e-9 for r in rows), cases=len(rows))
    print(summary)
    save("dictionary_variants", {"machine": machine_info("cpu"), "rows": rows, "summary": summary})


if __name__ == "__main__":
    main()
