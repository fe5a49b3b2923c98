import itertools

import pytest
import torch

from torchnmf_l1.synthetic import middle_points


def test_middle_points_structure():
    r, m = 5, 12
    X = middle_points(r, m, seed=3)
    assert X.shape == (m, r + r * (r - 1) // 2)
    for k, (i, j) in enumerate(itertools.combinations(range(r), 2)):
        torch.testing.assert_close(X[:, r + k], (X[:, i] + X[:, j]) / 2)


def test_middle_points_outward_moves_away_from_mean_vertex():
    r, m, delta = 4, 9, 0.3
    clean, pushed = middle_points(r, m, seed=1), middle_points(r, m, outward=delta, seed=1)
    torch.testing.assert_close(pushed[:, :r], clean[:, :r])  # vertices untouched
    centre = clean[:, :r].mean(1, keepdim=True)
    expected = (clean[:, r:] + delta * (clean[:, r:] - centre)).clamp_min(0)
    torch.testing.assert_close(pushed[:, r:], expected)


def test_middle_points_gaussian_level():
    clean = middle_points(6, 200, seed=0)
    noisy = middle_points(6, 200, gaussian=0.01, seed=0)  # small enough that clamping is rare
    ratio = torch.linalg.norm(noisy - clean) / torch.linalg.norm(clean)
    assert abs(float(ratio) - 0.01) < 1e-3


@pytest.mark.parametrize("kwargs, match", [
    (dict(rank=1, m=5), "rank"), (dict(rank=3, m=0), "m must"),
    (dict(rank=3, m=5, outward=-0.1), "outward"), (dict(rank=3, m=5, gaussian=float("nan")), "gaussian"),
])
def test_middle_points_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        middle_points(**kwargs)
