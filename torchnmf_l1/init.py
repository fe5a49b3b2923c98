"""Initialisations of (W, H), registered by name; each takes a ``torch.Generator``.

All are deterministic for a given seed on a given device. Registered names:
``"random"``, ``"nndsvd"``, ``"nndsvda"``, ``"nndsvdar"`` and ``"custom"``.

References
----------
C. Boutsidis and E. Gallopoulos, "SVD based initialization: A head start for
nonnegative matrix factorization", Pattern Recognition 41(4), 2008.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import kernels
from .data import Data, check_factor
from .registry import register_init

__all__ = ["initialize", "random_init", "nndsvd_init", "make_generator"]


def make_generator(seed, device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (a fresh random seed when None)."""
    device = torch.device(device)
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a nonnegative integer or None, got {seed!r}")
        generator.manual_seed(seed)
    return generator


def _data_mean(data: Data) -> Tensor:
    m, n = data.shape
    return kernels.data_sum(data.X) / (m * n)


@register_init("random")
def random_init(data: Data, rank: int, *, generator: torch.Generator, **_) -> tuple[Tensor, Tensor]:
    """Uniform [0, 1) entries scaled by ``sqrt(mean(X) / rank)``, so that WH has X's mean scale."""
    m, n = data.shape
    like = dict(device=data.device, dtype=data.dtype, generator=generator)
    scale = torch.sqrt(_data_mean(data) / rank)
    W = torch.rand(m, rank, **like) * scale
    H = torch.rand(rank, n, **like) * scale
    return W, H


def nndsvd_init(data: Data, rank: int, *, generator: torch.Generator, fill: str = "zeros") -> tuple[Tensor, Tensor]:
    """NNDSVD of Boutsidis and Gallopoulos (2008), vectorised over the components.

    ``fill``: ``"zeros"`` (NNDSVD), ``"mean"`` (NNDSVDa: zeros set to mean(X)),
    ``"random"`` (NNDSVDar: zeros set to uniform values in [0, mean(X)/100)).
    """
    U, S, Vh = kernels.truncated_svd(data.X, rank, generator=generator, X_t=data.X_t)
    tiny = torch.finfo(data.dtype).tiny
    x, y = U, Vh.transpose(0, 1)
    xp, xn = x.clamp_min(0), (-x).clamp_min(0)
    yp, yn = y.clamp_min(0), (-y).clamp_min(0)
    xpn, xnn = torch.linalg.vector_norm(xp, dim=0), torch.linalg.vector_norm(xn, dim=0)
    ypn, ynn = torch.linalg.vector_norm(yp, dim=0), torch.linalg.vector_norm(yn, dim=0)
    positive = (xpn * ypn) >= (xnn * ynn)
    u = torch.where(positive, xp / xpn.clamp_min(tiny), xn / xnn.clamp_min(tiny))
    v = torch.where(positive, yp / ypn.clamp_min(tiny), yn / ynn.clamp_min(tiny))
    sigma = torch.where(positive, xpn * ypn, xnn * ynn)
    scale = torch.sqrt(S * sigma)
    W = u * scale
    H = (v * scale).transpose(0, 1).contiguous()
    # The leading singular pair of a nonnegative matrix is nonnegative (Perron-Frobenius).
    W[:, 0] = torch.sqrt(S[0]) * x[:, 0].abs()
    H[0] = torch.sqrt(S[0]) * y[:, 0].abs()
    eps = 1e-6
    W = torch.where(W < eps, 0.0, W)
    H = torch.where(H < eps, 0.0, H)
    if fill == "mean":
        avg = _data_mean(data)
        W = torch.where(W == 0, avg, W)
        H = torch.where(H == 0, avg, H)
    elif fill == "random":
        avg = _data_mean(data)
        like = dict(device=data.device, dtype=data.dtype, generator=generator)
        W = torch.where(W == 0, torch.rand(W.shape, **like) * avg / 100, W)
        H = torch.where(H == 0, torch.rand(H.shape, **like) * avg / 100, H)
    return W, H


register_init("nndsvd")(lambda data, rank, *, generator, **_: nndsvd_init(data, rank, generator=generator))
register_init("nndsvda")(lambda data, rank, *, generator, **_: nndsvd_init(data, rank, generator=generator, fill="mean"))
register_init("nndsvdar")(
    lambda data, rank, *, generator, **_: nndsvd_init(data, rank, generator=generator, fill="random")
)


@register_init("custom")
def custom_init(data: Data, rank: int, *, W=None, H=None, **_) -> tuple[Tensor, Tensor]:
    """User-given W (m x r) and H (r x n), validated and copied."""
    m, n = data.shape
    if W is None or H is None:
        raise ValueError("init='custom' needs both W and H")
    like = dict(device=data.device, dtype=data.dtype)
    return check_factor(W, "W", (m, rank), **like), check_factor(H, "H", (rank, n), **like)


def initialize(
    data: Data, rank: int, init: str, *, generator: torch.Generator, W=None, H=None
) -> tuple[Tensor, Tensor]:
    """Initial (W, H) by the registered initialisation ``init``."""
    from .registry import get_init

    if (W is not None or H is not None) and init.lower() != "custom":
        raise ValueError(f"W and H are only used with init='custom', got init={init!r}")
    return get_init(init)(data, rank, generator=generator, W=W, H=H)
