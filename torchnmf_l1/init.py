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


@register_init("l1-init")
def l1_init(
    data: Data, rank: int, *, generator: torch.Generator, hals_iter: int = 10, **_
) -> tuple[Tensor, Tensor]:
    r"""The reference initialisation of L1-NMF: random, scaled, balanced, then a few HALS iterations.

    1. W, H uniform in [0, 1);
    2. one scaling so that :math:`\sum_{ij}(WH)_{ij} = \sum_{ij} X_{ij}`
       (:math:`\sum WH = \sum_k (\sum_i W_{ik})(\sum_j H_{kj})`, no m x n product);
    3. balancing: :math:`W_{:k} \leftarrow d_k W_{:k}`, :math:`H_{k:} \leftarrow H_{k:}/d_k`
       with :math:`d_k = \sqrt{\|H_{k:}\|_1 / \|W_{:k}\|_1}`, so the column sums of W equal
       the row sums of H;
    4. ``hals_iter`` iterations of Frobenius NMF by HALS (:func:`kernels.hals_nnls_`, one
       sweep per factor), on sparse X through its support only.

    Overridable: pass ``init=`` another registered name to the model, or call this
    function with another ``hals_iter`` and give the result as ``init="custom"``.

    References
    ----------
    N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
    """
    m, n = data.shape
    like = dict(device=data.device, dtype=data.dtype, generator=generator)
    W = torch.rand(m, rank, **like)
    H = torch.rand(rank, n, **like)
    tiny = torch.finfo(data.dtype).tiny
    total_wh = torch.sum(W.sum(0) * H.sum(1))
    W.mul_(kernels.data_sum(data.X) / total_wh.clamp_min(tiny))
    d = torch.sqrt(H.sum(1) / W.sum(0).clamp_min(tiny))
    W.mul_(d)
    H.div_(d.clamp_min(tiny).unsqueeze(1))
    data_t = data.T
    for _ in range(hals_iter):
        Wt = W.transpose(0, 1).contiguous()
        A = kernels.wt_x(H.transpose(0, 1), data_t.X, data_t.X_t)
        kernels.hals_nnls_(Wt, A, kernels.gram(H, transpose=True), max_sweeps=1, delta=0.0, keep_rows_positive=True)
        W = Wt.transpose(0, 1).contiguous()
        kernels.hals_nnls_(
            H, kernels.wt_x(W, data.X, data.X_t), kernels.gram(W), max_sweeps=1, delta=0.0, keep_rows_positive=True
        )
    return W, H
