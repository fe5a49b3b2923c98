"""Worked examples of differentiable NMF: an NNLS-layer classifier and an unmixing layer.

1. **Digits classifier** (scikit-learn's bundled 8 x 8 digits): codes of an
   :class:`~torchnmf_l1.NNLSLayer` (rank 16) feed a linear classifier. Two variants
   start from the same dictionary (a HALS fit of the training images):
   *frozen* keeps it (NMF features + a trained linear head), *end to end*
   trains it with the head on the cross-entropy (implicit backward, projection
   after each step). Reports the test accuracies.
2. **Urban unmixing** (``../shared/data/urban_undersampled4.mat``, 162 bands; pixels
   subsampled): the fixed-point solver (accelerated HALS) against two autograd
   trainings, an NNLS layer whose dictionary W (the endmembers) is learned by Adam
   through the implicit backward, and :func:`~torchnmf_l1.parametrize.train_autograd`
   on an NMF's W and H (softplus parametrization). Reports relative errors
   ||X - WH||_F / ||X||_F.

Generated data replaces the Urban file when it is absent. Writes
``experiments/results/nmf_layer_examples.json``; the notebook
``notebooks/06_differentiable_nmf.ipynb`` runs the same functions with smaller settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from torchnmf_l1 import NMF, NNLSLayer
from torchnmf_l1.parametrize import positive, train_autograd

ROOT = Path(__file__).resolve().parents[1]
URBAN = ROOT.parent / "shared" / "data" / "urban_undersampled4.mat"


def _accuracy(logits, labels):
    return float((logits.argmax(dim=1) == labels).to(torch.float64).mean())


def digits_classifier(rank=16, n_iter=40, steps=150, lr=0.02, nmf_iter=200, seed=0):
    """Train the frozen-NMF and end-to-end NNLS-layer classifiers on the sklearn digits.

    Returns
    -------
    dict with the test accuracies ``frozen_accuracy`` and ``end_to_end_accuracy``,
    the training losses and the settings.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = torch.as_tensor(digits.data, dtype=torch.float64) / 16.0  # (1797, 64), in [0, 1]
    y = torch.as_tensor(digits.target)
    perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    n_train = int(0.75 * X.shape[0])
    train, test = perm[:n_train], perm[n_train:]

    nmf = NMF(rank, solver="hals", seed=seed, dtype=torch.float64)
    nmf.fit(X[train].T, max_iter=nmf_iter, tol=0)
    W0 = nmf.W.detach().clone()

    results = {"rank": rank, "n_iter": n_iter, "steps": steps, "n_train": n_train, "n_test": len(test)}
    for variant, learn_W in (("frozen", False), ("end_to_end", True)):
        torch.manual_seed(seed)
        layer = NNLSLayer(64, rank, backward="implicit", n_iter=n_iter, dtype=torch.float64)
        with torch.no_grad():
            layer.W.copy_(W0)
        layer.W.requires_grad_(learn_W)
        head = torch.nn.Linear(rank, 10, dtype=torch.float64)
        model = torch.nn.Sequential(layer, torch.nn.LayerNorm(rank, dtype=torch.float64), head)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        start = time.perf_counter()
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X[train]), y[train])
            loss.backward()
            opt.step()
            layer.project_()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            results[f"{variant}_accuracy"] = _accuracy(model(X[test]), y[test])
            results[f"{variant}_train_accuracy"] = _accuracy(model(X[train]), y[train])
        results[f"{variant}_final_loss"] = losses[-1]
        results[f"{variant}_seconds"] = time.perf_counter() - start
    return results


def load_urban(pixel_step=4):
    """Urban (162 bands) with every ``pixel_step``-th pixel, scaled to [0, 1]; generated data when absent."""
    if URBAN.exists():
        import scipy.io

        M = torch.as_tensor(scipy.io.loadmat(URBAN)["M"].astype("float64"))
        return M[:, ::pixel_step] / 1000.0, "urban_undersampled4.mat"
    g = torch.Generator().manual_seed(0)
    bands = torch.linspace(0, 1, 162, dtype=torch.float64)
    W = torch.exp(-((bands[:, None] - torch.linspace(0.1, 0.9, 6, dtype=torch.float64)) ** 2) / 0.03)
    H = torch.distributions.Dirichlet(torch.full((6,), 0.5, dtype=torch.float64)).sample((5929 // pixel_step,)).T
    return W @ H, "generated (urban_undersampled4.mat absent)"


def urban_unmixing(rank=6, pixel_step=4, hals_iter=200, steps=150, n_iter=30, lr=0.01, seed=0):
    """Unmix Urban with HALS, an NNLS layer trained by autograd, and train_autograd on an NMF.

    Returns
    -------
    dict with the relative errors ``hals_relative_error``, ``layer_relative_error``,
    ``train_autograd_relative_error``, the endmember angle between the layer's
    and the HALS dictionaries, timings and settings.
    """
    X, source = load_urban(pixel_step)
    m, n = X.shape
    norm = torch.linalg.norm(X)
    out = {"data": source, "shape": [m, n], "rank": rank, "steps": steps, "n_iter": n_iter}

    start = time.perf_counter()
    nmf = NMF(rank, solver="hals", init="nndsvda", seed=seed, dtype=torch.float64)
    nmf.fit(X, max_iter=hals_iter, tol=0)
    out["hals_relative_error"] = float(torch.linalg.norm(X - nmf().detach()) / norm)
    out["hals_seconds"] = time.perf_counter() - start

    # An unmixing layer: pixels in, abundances out; its dictionary (the endmembers) is learned by
    # Adam through the implicit backward. Start from the same NNDSVDa dictionary as the fit.
    start_nmf = NMF(rank, solver="hals", init="nndsvda", seed=seed, dtype=torch.float64)
    start_nmf.fit(X, max_iter=1, tol=0)
    layer = NNLSLayer(m, rank, backward="implicit", n_iter=n_iter, dtype=torch.float64)
    with torch.no_grad():
        layer.W.copy_(start_nmf.W)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    pixels = X.T
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (pixels - layer(pixels) @ layer.W.T).square().sum()
        loss.backward()
        opt.step()
        layer.project_()
    with torch.no_grad():
        H_layer = layer(pixels).T
        out["layer_relative_error"] = float(torch.linalg.norm(X - layer.W @ H_layer) / norm)
    out["layer_seconds"] = time.perf_counter() - start

    # train_autograd on an NMF's factors with softplus parametrizations, from the same start.
    model = NMF(rank, shape=(m, n), dtype=torch.float64, seed=seed)
    with torch.no_grad():
        model.W.copy_(start_nmf.W.clamp_min(1e-6))
        model.H.copy_(start_nmf.H.clamp_min(1e-6))
    positive(positive(model, "W", "softplus"), "H", "softplus")
    start = time.perf_counter()
    train_autograd(model, X, steps=steps * 4, lr=lr)
    with torch.no_grad():
        out["train_autograd_relative_error"] = float(torch.linalg.norm(X - model.reconstruct()) / norm)
    out["train_autograd_seconds"] = time.perf_counter() - start

    # how far the learned endmembers are from the fixed-point ones (mean best-match angle, degrees)
    A = torch.nn.functional.normalize(layer.W.detach(), dim=0)
    B = torch.nn.functional.normalize(nmf.W.detach(), dim=0)
    cos = (A.T @ B).clamp(-1, 1)
    out["layer_vs_hals_mean_angle_deg"] = float(torch.rad2deg(torch.arccos(cos.amax(dim=1))).mean())
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "experiments" / "results" / "nmf_layer_examples.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    digits = digits_classifier()
    print(f"digits, rank {digits['rank']}: test accuracy frozen NMF features {digits['frozen_accuracy']:.3f}, "
          f"end-to-end NNLS layer {digits['end_to_end_accuracy']:.3f}")
    urban = urban_unmixing()
    print(f"unmixing ({urban['data']}, {urban['shape'][0]} x {urban['shape'][1]}, rank {urban['rank']}): relative error "
          f"HALS {urban['hals_relative_error']:.4f}, NNLS layer by Adam {urban['layer_relative_error']:.4f}, "
          f"train_autograd (softplus) {urban['train_autograd_relative_error']:.4f}; "
          f"layer vs HALS endmember angle {urban['layer_vs_hals_mean_angle_deg']:.1f} deg")
    out = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": "cpu", "note": "shared, contended 2-core machine"},
        "digits": digits,
        "urban": urban,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
