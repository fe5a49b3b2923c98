"""Figures of a fit: convergence, abundance maps, spectra, basis images, top words.

Needs matplotlib (the ``plot`` extra). The figures are drawn on ``matplotlib.figure.Figure``
objects with the Agg canvas, never through ``pyplot``, so nothing global is changed.
Each function saves a PNG and returns its path.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .readers import matrix_to_cube

__all__ = [
    "have_matplotlib",
    "plot_convergence",
    "plot_abundances",
    "plot_spectra",
    "plot_basis_images",
    "plot_top_words",
    "top_words",
]


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width, height):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'torchnmf-l1[plot]'") from None
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def _grid(k: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(k))
    return math.ceil(k / cols), cols


def plot_convergence(iterations, objective, path, *, title: str = "") -> Path:
    """Objective against iteration (log scale when positive)."""
    fig = _figure(5, 3.5)
    ax = fig.add_subplot()
    ax.plot(iterations, objective, marker="o", markersize=3)
    if len(objective) and min(objective) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("objective")
    ax.set_title(title or "convergence")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_abundances(H, image_shape, path, *, order: str = "C") -> Path:
    """Each row of H (r x pixels) drawn as a map of the image's own shape."""
    maps = matrix_to_cube(np.asarray(H), image_shape, order=order)
    rows, cols = _grid(len(maps))
    fig = _figure(2.2 * cols, 2.2 * rows)
    for k, a in enumerate(maps):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(a, cmap="viridis")
        ax.set_title(f"abundance {k + 1}", fontsize=8)
        ax.axis("off")
    return _save(fig, path)


def plot_spectra(W, path, *, wavelengths=None) -> Path:
    """Each column of W (bands x r) as a spectrum."""
    W = np.asarray(W)
    x = np.arange(W.shape[0]) if wavelengths is None else np.asarray(wavelengths)
    fig = _figure(5, 3.5)
    ax = fig.add_subplot()
    for k in range(W.shape[1]):
        ax.plot(x, W[:, k], label=f"{k + 1}")
    ax.set_xlabel("band" if wavelengths is None else "wavelength")
    ax.set_ylabel("reflectance")
    ax.set_title("endmember spectra")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_basis_images(W, image_shape, path, *, order: str = "C") -> Path:
    """Each column of W (pixels x r) as an image of ``image_shape`` (e.g. 19 x 19 faces)."""
    images = matrix_to_cube(np.asarray(W).T, image_shape, order=order)
    rows, cols = _grid(len(images))
    fig = _figure(1.3 * cols, 1.3 * rows)
    for k, a in enumerate(images):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(a, cmap="gray_r")
        ax.axis("off")
    return _save(fig, path)


def top_words(W, vocabulary=None, n_words: int = 10) -> list[list[str]]:
    """The ``n_words`` largest entries of each column of W (words x topics), as words."""
    W = np.asarray(W)
    order = np.argsort(-W, axis=0, kind="stable")[:n_words]
    vocab = vocabulary if vocabulary is not None else [f"word{i}" for i in range(W.shape[0])]
    return [[str(vocab[i]) for i in order[:, k]] for k in range(W.shape[1])]


def plot_top_words(W, path, *, vocabulary=None, n_words: int = 10) -> Path:
    """A bar chart of the top words of each topic (column of W)."""
    W = np.asarray(W)
    words = top_words(W, vocabulary, n_words)
    order = np.argsort(-W, axis=0, kind="stable")[:n_words]
    rows, cols = _grid(W.shape[1])
    fig = _figure(2.6 * cols, 0.25 * n_words * rows + 0.6 * rows)
    for k in range(W.shape[1]):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.barh(range(n_words)[::-1], W[order[:, k], k])
        ax.set_yticks(range(n_words)[::-1], words[k], fontsize=7)
        ax.set_title(f"topic {k + 1}", fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
    fig.tight_layout()
    return _save(fig, path)
