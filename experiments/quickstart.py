"""Quickstart: unmix a small synthetic hyperspectral scene with torchnmf_l1.

Four endmember spectra (smooth bumps over 100 bands) are mixed over a 40 x 40
image with abundances that sum to one and some Gaussian noise; NMF with
accelerated HALS recovers the spectra and the abundance maps. Prints the relative
error and writes ``quickstart.png`` (abundance maps and spectra).
"""

from __future__ import annotations

import argparse
import math

import torch

from torchnmf_l1 import NMF


def make_scene(bands=100, side=40, materials=4, noise=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    wavelengths = torch.linspace(0, 1, bands, dtype=torch.float64)
    centres = torch.linspace(0.15, 0.85, materials, dtype=torch.float64)
    spectra = torch.exp(-((wavelengths[:, None] - centres[None, :]) ** 2) / 0.02) + 0.05
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    anchors = torch.rand(materials, 2, generator=g)
    distance = (yy[None] - anchors[:, 0, None, None]) ** 2 + (xx[None] - anchors[:, 1, None, None]) ** 2
    abundances = torch.softmax(-distance.double() / 0.02, dim=0).reshape(materials, -1)
    X = spectra @ abundances
    X = (X + noise * torch.randn(X.shape, generator=g, dtype=torch.float64) * X.mean()).clamp_min(0)
    return X, spectra, abundances, side


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="quickstart.png", help="where to write the picture")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    X, spectra, abundances, side = make_scene()
    model = NMF(rank=4, solver="hals", init="nndsvda", seed=0, device=args.device, dtype=torch.float64)
    result = model.fit(X.to(args.device), max_iter=1000, tol=1e-6)
    W, H = model.W.detach().cpu(), model.H.detach().cpu()
    relative_error = float(torch.linalg.norm(X - W @ H) / torch.linalg.norm(X))
    print(f"{result}")
    print(f"relative error ||X - WH||_F / ||X||_F = {relative_error:.4%}")

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: pip install 'torchnmf-l1[plot]' for the picture")
        return relative_error
    scale = W.sum(dim=0)  # show abundances in the units where each spectrum sums to 1
    fig, axes = plt.subplots(1, 5, figsize=(16, 3.2))
    for k in range(4):
        axes[k].imshow((H[k] * scale[k]).reshape(side, side).numpy(), cmap="viridis")
        axes[k].set_title(f"abundance {k + 1}")
        axes[k].axis("off")
    axes[4].plot((W / scale).numpy())
    axes[4].set_title("endmember spectra")
    axes[4].set_xlabel("band")
    fig.suptitle(f"torchnmf_l1 quickstart: relative error {relative_error:.3%}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=80)
    print(f"wrote {args.output}")
    return relative_error


if __name__ == "__main__":
    main()
