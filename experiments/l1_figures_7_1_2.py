"""Figures 7.1 and 7.2 of the L1-NMF paper: NMF models on MNIST under salt-and-pepper noise.

The paper's setting (Seraghiti, Gillis et al., arXiv 2603.29715, tests/Figure_7_1_2.jl):
300 MNIST digits (784 x 300, scaled to [0, 1]); noise p in {0, 4, 8, 12, 16, 20} %: a share
p of the nonzero pixels set to 0 and a share p of the zero pixels set to 1; r = 50; L1-NMF
by sCD (lambda = 1, from 10 Frobenius HALS iterations, the paper's stopping rule), and
Frobenius (HALS), L2,1 (MU) and KL (MU) NMF, all from the same start (uniform,
least-squares scaled, balanced), each with a time budget (paper: 90 s). Figure 7.1: the
relative error of WH to the clean digits, ||X_clean - WH||_F / ||X_clean||_F; Figure 7.2:
the PSNR; plus an image panel of a few digits at one noise level. The digits come from
../shared/data/mnist5k.mat (5000 digits; the paper draws from MNIST's 60000); without it,
scikit-learn's 8 x 8 digits stand in. Writes experiments/results/l1_figures_7_1_2.{json,png}
and l1_figures_7_1_2_panel.png.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _l1_common import figure_path, load_config, load_mnist, machine_info, paper_start, plt, print_table, psnr, salt_and_pepper, save
from torchnmf_l1 import NMF

MODELS = {  # label: (loss, solver, fit options)
    "L1-NMF (sCD)": ("l1", "scd", {"stopping": "paper"}),
    "Frobenius (HALS)": ("frobenius", "hals", {}),
    "L21-NMF (MU)": ("l21", "l21-mu", {}),
    "KL-NMF (MU)": ("kl", "mu", {}),
}


def digits(cfg):
    loaded = load_mnist(cfg["images"], cfg["seed"])
    if loaded is not None:
        return loaded[0], (28, 28), "mnist5k.mat"
    from sklearn.datasets import load_digits

    X = load_digits().data.T / 16.0
    return X[:, : cfg["images"]], (8, 8), "sklearn digits (mnist5k.mat absent)"


def fit(label, X, start, hals_start, cfg):
    loss, solver, options = MODELS[label]
    W0, H0 = hals_start if loss == "l1" else start
    model = NMF(cfg["rank"], loss=loss, solver=solver, dtype=torch.float64, **options)
    begin = time.perf_counter()
    result = model.fit(X, W=W0, H=H0, max_iter=cfg["max_iter"], tol=cfg["tol"], time_limit=cfg["time_limit"],
                       check_every=1, warn=False, threads=cfg["threads"])
    return model.reconstruct().numpy(), result, time.perf_counter() - begin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--time-limit", type=float)
    args = parser.parse_args(argv)
    cfg = load_config("l1_figures_7_1_2", args.config)
    if args.time_limit:
        cfg["time_limit"] = args.time_limit
    torch.set_num_threads(cfg["threads"])
    clean, shape, source = digits(cfg)
    norm = np.linalg.norm(clean)
    rng = np.random.default_rng(cfg["seed"])
    rows, panels = [], {}
    for p in cfg["noise"]:
        X = salt_and_pepper(clean, p, rng)
        start = paper_start(X, cfg["rank"], seed=1, hals_iter=0)
        hals_start = paper_start(X, cfg["rank"], seed=1, hals_iter=10, tol=1e-6)
        row = dict(noise=p, zeros_pct=100 * float(np.mean(X == 0)), noisy_error=np.linalg.norm(clean - X) / norm,
                   noisy_psnr=psnr(clean, X))
        for label in MODELS:
            WH, result, seconds = fit(label, X, start, hals_start, cfg)
            key = label.split()[0]
            row[f"{key} error"] = float(np.linalg.norm(clean - WH) / norm)
            row[f"{key} psnr"] = psnr(clean, WH)
            row[f"{key} iterations"] = result.n_iter
            row[f"{key} seconds"] = seconds
            if p == cfg["panel_noise"]:
                panels[label] = WH
        if p == cfg["panel_noise"]:
            panels["noisy"] = X
        rows.append(row)
        print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, ["noise"] + [f"{label.split()[0]} error" for label in MODELS] + [f"{label.split()[0]} psnr" for label in MODELS])
    save("l1_figures_7_1_2", {
        "paper_setting": "Figures 7.1/7.2: 300 MNIST digits of 60000, p in 0..20 %, r = 50, time limit 90 s per model, "
                         "L1 (sCD) vs L2 (HALS) vs L21 (MU) vs KL (MU); one run per p",
        "our_setting": f"{cfg['images']} digits of {source}, the same noise grid, r = {cfg['rank']}, time limit "
                       f"{cfg['time_limit']:g} s per model, {cfg['threads']} threads; one run per p",
        "data": source, "config": cfg, "machine": machine_info("cpu"), "rows": rows,
    })
    pyplot = plt()
    fig, axes = pyplot.subplots(1, 2, figsize=(10, 3.8))
    noise = [r["noise"] for r in rows]
    for label in MODELS:
        key = label.split()[0]
        axes[0].plot(noise, [r[f"{key} error"] for r in rows], "o-", label=label)
        axes[1].plot(noise, [r[f"{key} psnr"] for r in rows], "o-", label=label)
    axes[0].plot(noise, [r["noisy_error"] for r in rows], "k:", label="noisy data")
    axes[1].plot(noise, [r["noisy_psnr"] for r in rows], "k:", label="noisy data")
    axes[0].set(xlabel="noise level p", ylabel="||X_clean - WH|| / ||X_clean||", title="Figure 7.1: error to the clean digits")
    axes[1].set(xlabel="noise level p", ylabel="PSNR (dB)", title="Figure 7.2: PSNR")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(figure_path("l1_figures_7_1_2"), dpi=110)
    if panels:
        columns = ["noisy"] + list(MODELS)
        k = cfg["panel_images"]
        fig, axes = pyplot.subplots(k, len(columns), figsize=(1.4 * len(columns), 1.4 * k))
        for j, name in enumerate(columns):
            for i in range(k):
                axes[i, j].imshow(panels[name][:, i].reshape(shape), cmap="gray", vmin=0, vmax=1)
                axes[i, j].axis("off")
            axes[0, j].set_title(name.replace(" (", "\n("), fontsize=7)
        fig.suptitle(f"p = {cfg['panel_noise']:g}", fontsize=9)
        fig.tight_layout()
        fig.savefig(figure_path("l1_figures_7_1_2_panel"), dpi=110)


if __name__ == "__main__":
    main()
