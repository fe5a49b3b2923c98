"""Rank selection: rank_sweep's errors, stability, consensus and held-out error."""

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF, kernels
from torchnmf_l1.kernels import stability
from torchnmf_l1.sweep import rank_sweep


def planted(seed=0, m=40, n=60, r=4, noise=0.01):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=torch.float64) ** 3  # distinct, fairly sparse spectra
    H = torch.rand(r, n, generator=g, dtype=torch.float64) ** 3
    X = W @ H
    return X + noise * X.mean() * torch.rand(m, n, generator=g, dtype=torch.float64), W


def test_silhouette_and_kmeans_against_brute_force():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]], dtype=torch.float64)
    points = torch.cat([c + 0.3 * torch.randn(15, 2, generator=g, dtype=torch.float64) for c in centres])
    labels = stability.kmeans(points, 3, generator=torch.Generator().manual_seed(0))
    truth = torch.arange(3).repeat_interleave(15)
    # the clusters found are the planted ones, up to their numbering
    assert all(len(set(labels[truth == c].tolist())) == 1 for c in range(3))
    D = torch.cdist(points, points).numpy()
    expected = []
    for i in range(len(points)):
        same = labels.numpy() == labels[i].item()
        a = D[i, same].sum() / (same.sum() - 1)
        b = min(D[i, labels.numpy() == c].mean() for c in range(3) if c != labels[i].item())
        expected.append((b - a) / max(a, b))
    assert stability.silhouette_score(points, labels) == pytest.approx(np.mean(expected), rel=1e-12)


def test_consensus_and_cophenetic_correlation():
    H = torch.zeros(3, 2, 6, dtype=torch.float64)
    H[:, 0, :3] = 1.0
    H[:, 1, 3:] = 1.0  # every replicate: columns 0-2 together, 3-5 together
    C = stability.consensus_matrix(H)
    assert torch.equal(C, torch.block_diag(torch.ones(3, 3), torch.ones(3, 3)).double())
    assert stability.cophenetic_correlation(C) == pytest.approx(1.0)
    H[1, 0, 2], H[1, 1, 2] = 0.0, 1.0  # one replicate moves column 2
    assert stability.cophenetic_correlation(stability.consensus_matrix(H)) < 1.0


def test_rank_sweep_finds_the_planted_rank_and_its_replicates_are_single_fits():
    X, W_true = planted()
    sweep = rank_sweep(X, [2, 3, 4, 5, 6], n_replicates=6, holdout=0.2, seed=3, max_iter=800, tol=1e-7)
    table = {row["rank"]: row for row in sweep.table()}
    # the held-out error is lowest at the planted rank, and the error drops to the noise there
    assert min(table, key=lambda r: table[r]["held_out_error"]) == 4
    assert table[4]["best_error"] < 0.02 < table[3]["best_error"]
    assert table[4]["silhouette"] > 0.9 and table[4]["cophenetic"] > 0.95
    # the consensus spectra are the planted ones (cosine > 0.99, one to one)
    cW = sweep[4].consensus_W
    cosine = (torch.nn.functional.normalize(W_true, dim=0).T @ cW).numpy()
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-cosine)
    assert cosine[rows, cols].min() > 0.99
    # replicate k of a rank is the single fit with seed + k on the same observed entries
    mask = torch.rand(X.shape, generator=torch.Generator().manual_seed(3)) >= 0.2
    single = NMF(4, seed=3 + 2, init="random")
    single.fit(X, mask=mask, max_iter=800, tol=1e-7, warn=False)
    assert sweep[4].objectives[2] == pytest.approx(single.result_.final_objective, rel=1e-6)


def test_rank_sweep_bad_input():
    X, _ = planted()
    with pytest.raises(ValueError, match="ranks must be <= min"):
        rank_sweep(X, [2, 100], n_replicates=2)
    with pytest.raises(ValueError, match="'n_replicates' must be an integer >= 2"):
        rank_sweep(X, [2], n_replicates=1)
    with pytest.raises(ValueError, match="'holdout' must be a number in"):
        rank_sweep(X, [2], holdout=0.95)
    with pytest.raises(ValueError, match="ranks is empty"):
        rank_sweep(X, [])
    with pytest.raises(ValueError, match="dense 2-D"):
        rank_sweep(X.to_sparse(), [2])


def test_plot_rank_sweep_draws_every_measure(tmp_path):
    pytest.importorskip("matplotlib")
    from torchnmf_l1.io.plots import plot_rank_sweep

    X, _ = planted(n=30)
    sweep = rank_sweep(X, [2, 3], n_replicates=3, holdout=0.1, max_iter=50)
    fig = plot_rank_sweep(sweep, None)
    errors, stable = fig.axes
    assert len(errors.lines) == 4 and len(stable.lines) == 2  # best, median, consensus, held out; two stabilities
    assert [list(line.get_xdata()) for line in stable.lines] == [[2, 3], [2, 3]]
    assert plot_rank_sweep(sweep, tmp_path / "sweep.png").stat().st_size > 0


def test_sweep_command_writes_the_table_the_consensus_and_the_figure(tmp_path):
    import json

    from pathlib import Path

    from torchnmf_l1.cli import main

    config = str(Path(__file__).resolve().parents[1] / "configs" / "synthetic_sweep.toml")
    out = tmp_path / "out"
    code = main(["--quiet", "sweep", config, "--ranks", "2", "3", "--replicates", "3",
                 "-o", str(out), "--set", "fit.max_iter=40"] + ([] if _have_matplotlib() else ["--no-figures"]))
    assert code == 0
    report = json.loads((out / "sweep.json").read_text())
    assert [row["rank"] for row in report["table"]] == [2, 3]
    assert all(len(v) == 3 for v in report["objectives"].values())
    consensus = np.load(out / "consensus.npz")
    assert consensus["W_3"].shape == (40, 3) and consensus["H_3"].shape == (3, 60)
    if _have_matplotlib():
        assert (out / "figures" / "rank_sweep.png").stat().st_size > 0
    assert main(["--quiet", "sweep", config, "--set", "model.name=\"separable\"",
                 "-o", str(tmp_path / "x")]) == 2  # a usage error, nothing written
    assert not (tmp_path / "x").exists()


def _have_matplotlib():
    from torchnmf_l1.io.plots import have_matplotlib

    return have_matplotlib()


def test_no_step_holds_every_replicates_reconstruction(monkeypatch):
    # budget: two replicates' m x n at a time; no single allocation may hold all R of them
    from torch.profiler import ProfilerActivity, profile

    from torchnmf_l1.kernels import losses, mu, weighted

    R, m, n = 8, 64, 64
    for module in (weighted, mu, losses):
        monkeypatch.setattr(module, "_BLOCK_ELEMENTS", 2 * m * n)
    X, _ = planted(m=m, n=n)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        rank_sweep(X, [3], n_replicates=R, holdout=0.2, max_iter=5)
        NMF(3, n_replicates=R, solver="mu", loss="kl", seed=0).fit(X, max_iter=5, warn=False)
    largest = max(e.cpu_memory_usage for e in prof.events())
    all_reconstructions = R * m * n * X.element_size()
    assert 0 < largest < all_reconstructions / 2, f"an op allocated {largest} bytes (all replicates: {all_reconstructions})"
