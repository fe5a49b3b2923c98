r"""Synthetic data with a known answer, for tests, benchmarks and experiments.

References
----------
N. Gillis and S. A. Vavasis, "Fast and robust recursive algorithms for separable
nonnegative matrix factorization", IEEE TPAMI 36(4), 2014 (the middle-points data).
N. Gillis and R. Luce, "A fast gradient method for nonnegative sparse regression with
self-dictionary", IEEE Trans. Image Processing 27(1), 2018.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

__all__ = ["middle_points"]


def middle_points(
    rank: int,
    m: int,
    *,
    outward: float = 0.0,
    gaussian: float = 0.0,
    seed: int = 0,
    device=None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    r"""Near-separable "middle points" data: r vertices and the midpoint of every pair.

    X = [W, W H_m] + N with W (m x r) uniform in [0, 1), H_m (r x r(r-1)/2) holding
    1/2 at the two vertices of each pair, then clamped at 0. The true K is the
    first r columns.

    Parameters
    ----------
    rank, m : int
        Number of vertices r (>= 2) and of rows m.
    outward : float
        Adversarial noise: each midpoint is moved away from the mean vertex,
        :math:`x_j \leftarrow x_j + \delta (x_j - \bar w)` (Gillis and Vavasis 2014).
    gaussian : float
        I.i.d. Gaussian noise on every column, scaled so that
        :math:`\|N\|_F = \epsilon \|W H\|_F`.
    seed : int
        Seed of the CPU generator that draws W and the noise (same data on every device).

    Returns
    -------
    Tensor, shape (m, r + r(r-1)/2)
    """
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 2:
        raise ValueError(f"rank must be an integer >= 2, got {rank!r}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be a positive integer, got {m!r}")
    for name, value in (("outward", outward), ("gaussian", gaussian)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, rank, generator=g, dtype=torch.float64)
    pairs = list(itertools.combinations(range(rank), 2))
    H = torch.zeros(rank, rank + len(pairs), dtype=torch.float64)
    H[:, :rank] = torch.eye(rank, dtype=torch.float64)
    for k, (i, j) in enumerate(pairs):
        H[i, rank + k] = H[j, rank + k] = 0.5
    X = W @ H
    X[:, rank:] += outward * (X[:, rank:] - W.mean(1, keepdim=True))
    if gaussian:
        N = torch.randn(X.shape, generator=g, dtype=torch.float64)
        X += gaussian * torch.linalg.norm(X) / torch.linalg.norm(N) * N
    return X.clamp_min(0).to(device=device, dtype=dtype)
