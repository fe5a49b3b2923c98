"""Figures of a fit: convergence, abundance maps, spectra, basis images, top words.

Needs matplotlib (the ``plot`` extra). The figures are drawn on ``matplotlib.figure.Figure``
objects with the Agg canvas, never through ``pyplot``, so nothing global is changed.
Each function saves a PNG and returns its path; given ``path=None`` it returns the
``Figure`` instead (to display in a notebook, or to inspect).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .readers import matrix_to_cube

__all__ = [
    "have_matplotlib",
    "plot_convergence",
    "normalise_endmembers",
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


def _save(fig, path):
    """Save the figure to ``path`` and return the path; with ``path=None`` return the figure."""
    if path is None:
        return fig
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


def normalise_endmembers(W, H) -> tuple[np.ndarray, np.ndarray]:
    """W with each column scaled to a maximum of 1 and H with each row scaled the other way,
    so that W H is unchanged: spectra comparable in shape, abundances in the units of X
    (a zero column is left as it is)."""
    W, H = np.asarray(W, dtype=np.float64), np.asarray(H, dtype=np.float64)
    peak = W.max(axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    return W / peak, H * peak[:, None]


def plot_abundances(H, image_shape, path, *, order: str = "C", shared_scale: bool = True,
                    title: str = "abundance maps", labels=None) -> Path:
    """Each row of H (r x pixels) drawn as a map of the image's own shape, with a colorbar.

    ``shared_scale`` (default): one color scale [0, max H] for every map, so that maps are
    comparable (pass the H of :func:`normalise_endmembers` to give them X's units);
    otherwise each map has its own [0, max] scale. Row 0 of the image is drawn at the top,
    as the image is stored (``order`` as in :func:`torchnmf_l1.io.matrix_to_cube`).
    """
    H = np.asarray(H)
    maps = matrix_to_cube(H, image_shape, order=order)
    rows, cols = _grid(len(maps))
    fig = _figure(2.6 * cols, 2.4 * rows + 0.4)
    top = float(H.max()) if H.size and H.max() > 0 else 1.0
    for k, a in enumerate(maps):
        ax = fig.add_subplot(rows, cols, k + 1)
        vmax = top if shared_scale else (float(a.max()) if a.max() > 0 else 1.0)
        image = ax.imshow(a, cmap="viridis", vmin=0.0, vmax=vmax, origin="upper", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
        ax.set_title(labels[k] if labels is not None else f"component {k + 1}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title + (" (one color scale)" if shared_scale else " (each map its own scale)"), fontsize=9)
    return _save(fig, path)


def plot_spectra(W, path, *, wavelengths=None, normalise: bool = True, title: str = "endmember spectra",
                 reference=None) -> Path:
    """Each column of W (bands x r) as a spectrum.

    ``normalise`` (default): each spectrum scaled to a maximum of 1 (its shape, not its
    scale, which NMF leaves to H), and the y axis says so; otherwise W in X's units.
    ``reference`` (bands x r', optional): reference spectra (ground truth, another
    method's) drawn dashed in the color of the component they match best (largest
    cosine, one to one), normalised alike; unmatched ones in gray.
    """
    W = np.asarray(W, dtype=np.float64)
    x = np.arange(W.shape[0]) if wavelengths is None else np.asarray(wavelengths).ravel()

    def scaled(M):
        M = np.asarray(M, dtype=np.float64)
        if not normalise:
            return M
        peak = M.max(axis=0)
        return M / np.where(peak > 0, peak, 1.0)

    fig = _figure(5.5, 3.6)
    ax = fig.add_subplot()
    colors = [f"C{k % 10}" for k in range(W.shape[1])]
    for k, y in enumerate(scaled(W).T):
        ax.plot(x, y, color=colors[k], label=f"{k + 1}")
    if reference is not None:
        R = np.asarray(reference, dtype=np.float64)
        match = _match_columns(W, R)
        for j, y in enumerate(scaled(R).T):
            ax.plot(x, y, color=colors[match[j]] if j in match else "0.5", linestyle="--", linewidth=0.8)
    ax.set_xlabel("band index" if wavelengths is None else "wavelength")
    ax.set_ylabel("W[:, k] / max W[:, k]" if normalise else "W[:, k] (units of X)")
    ax.set_title(title + (" (dashed: reference)" if reference is not None else ""), fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, title="component", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def _match_columns(W: np.ndarray, R: np.ndarray) -> dict:
    """{column of R: column of W} pairing the most similar spectra (cosine), one to one."""
    from scipy.optimize import linear_sum_assignment

    def unit(M):
        norm = np.linalg.norm(M, axis=0)
        return M / np.where(norm > 0, norm, 1.0)

    rows, cols = linear_sum_assignment(-(unit(R).T @ unit(W)))
    return {int(j): int(k) for j, k in zip(rows, cols)}


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


def plot_top_words(W, path, *, vocabulary=None, n_words: int = 10, title: str = "", labels=None) -> Path:
    """A bar chart of the top words of each topic (column of W), one panel per topic.

    ``title`` (e.g. the classes of documents used) heads the figure; ``labels`` names
    the panels (default "topic k"). The bars are the weights W[word, k] / max W[:, k].
    """
    W = np.asarray(W, dtype=np.float64)
    words = top_words(W, vocabulary, n_words)
    order = np.argsort(-W, axis=0, kind="stable")[:n_words]
    rows, cols = _grid(W.shape[1])
    longest = max((len(w) for ws in words for w in ws), default=4)
    fig = _figure((1.6 + 0.075 * longest) * cols + 0.4, 0.22 * n_words * rows + 0.7 * rows + 0.4)
    for k in range(W.shape[1]):
        ax = fig.add_subplot(rows, cols, k + 1)
        peak = W[:, k].max() if W[:, k].max() > 0 else 1.0
        ax.barh(range(n_words)[::-1], W[order[:, k], k] / peak, color=f"C{k % 10}")
        ax.set_yticks(range(n_words)[::-1], words[k], fontsize=8)
        ax.set_xlim(0, 1.05)
        ax.set_title(labels[k] if labels is not None else f"topic {k + 1}", fontsize=9)
        ax.tick_params(axis="x", labelsize=6)
        ax.set_xlabel("weight / max", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_rank_sweep(sweep, path=None, *, title: str = "rank selection") -> Path:
    """The measures of a :func:`torchnmf_l1.sweep.rank_sweep` against the rank: the errors
    (best and median replicate, consensus, held-out when measured) and the stability
    (silhouette of the component clusters, cophenetic correlation of the consensus)."""
    rows = sweep.table()
    ranks = [row["rank"] for row in rows]
    fig = _figure(10, 3.6)
    errors, stable = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    errors.plot(ranks, [row["best_error"] for row in rows], "o-", label="best replicate")
    errors.plot(ranks, [row["median_error"] for row in rows], "s--", label="median replicate")
    errors.plot(ranks, [row["consensus_error"] for row in rows], "^:", label="consensus")
    if rows[0]["held_out_error"] is not None:
        errors.plot(ranks, [row["held_out_error"] for row in rows], "D-", color="C3",
                    label=f"held out ({sweep.holdout:.0%} of entries)")
    values = [v for row in rows for v in (row["best_error"], row["median_error"], row["consensus_error"]) if v is not None]
    if values and min(values) > 0:
        errors.set_yscale("log")
    errors.set_xlabel("rank")
    errors.set_ylabel("relative error ||X - WH|| / ||X||")
    errors.legend(fontsize=8)
    errors.grid(True, alpha=0.3)
    stable.plot(ranks, [row["silhouette"] for row in rows], "o-", label="silhouette (components)")
    stable.plot(ranks, [row["cophenetic"] for row in rows], "s--", label="cophenetic correlation")
    stable.set_xlabel("rank")
    stable.set_ylabel("stability (1 = every start agrees)")
    stable.set_ylim(top=1.02)
    stable.legend(fontsize=8)
    stable.grid(True, alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)
