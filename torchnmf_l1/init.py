"""Initialisations of (W, H), registered by name; each takes a ``torch.Generator``.

All are deterministic for a given seed on a given device. Registered names (family
``"nmf"``): ``"random"``, ``"nndsvd"``, ``"nndsvda"``, ``"nndsvdar"``, ``"l1-init"`` and
``"custom"``; a batch of problems is initialised problem by problem
(:func:`initialize` with one generator per problem). The CP inits (family ``"cp"``):
``"random"`` and ``"svd"``.

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
from .registry import get_init, register_init

__all__ = ["initialize", "initialize_cp", "random_init", "random_codes", "nndsvd_init", "make_generator"]


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


def random_codes(data: Data, rank: int, *, generator: torch.Generator) -> Tensor:
    """H (r x n) uniform in [0, 1) times ``sqrt(mean(X) / rank)``: the start of ``transform``."""
    n = data.shape[1]
    return torch.rand(rank, n, device=data.device, dtype=data.dtype, generator=generator) * torch.sqrt(_data_mean(data) / rank)


def nndsvd_init(data: Data, rank: int, *, generator: torch.Generator, fill: str = "zeros") -> tuple[Tensor, Tensor]:
    """NNDSVD of Boutsidis and Gallopoulos (2008), vectorised over the components.

    ``fill``: ``"zeros"`` (NNDSVD), ``"mean"`` (NNDSVDa: zeros set to a constant),
    ``"random"`` (NNDSVDar: zeros set to uniform values in [0, that constant / 100)).

    Every threshold and fill scales with the data, so that the start of ``c X`` is
    ``sqrt(c)`` times the start of X for any c > 0: entries below ``1e-6 sqrt(sigma_1)``
    are zeroed (scikit-learn's 1e-6 is absolute), and the fill constant is
    ``sqrt(mean(X) / r)``, the scale of the entries of W and H whose product has X's mean
    (scikit-learn fills with mean(X), which has the units of X, not of its factors).
    NNDSVD (``fill="zeros"``) therefore equals scikit-learn's wherever no entry of the
    start lies between the two thresholds.
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
    threshold = 1e-6 * torch.sqrt(S[0])
    W = torch.where(W < threshold, 0.0, W)
    H = torch.where(H < threshold, 0.0, H)
    if fill == "mean":
        avg = torch.sqrt(_data_mean(data) / rank)
        W = torch.where(W == 0, avg, W)
        H = torch.where(H == 0, avg, H)
    elif fill == "random":
        avg = torch.sqrt(_data_mean(data) / rank)
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
    lead = () if data.batch is None else (data.batch,)
    return check_factor(W, "W", lead + (m, rank), **like), check_factor(H, "H", lead + (rank, n), **like)


def initialize(
    data: Data, rank: int, init: str, *, generator, W=None, H=None
) -> tuple[Tensor, Tensor]:
    """Initial (W, H) by the registered initialisation ``init``.

    For a batch (``data.batch`` = B), ``generator`` is a list of B generators, one per
    problem, and each problem is initialised on its own matrix; W (B, m, r), H (B, r, n).
    """
    if (W is not None or H is not None) and init.lower() != "custom":
        raise ValueError(f"W and H are only used with init='custom', got init={init!r}")
    fn = get_init(init)
    if data.batch is None or init.lower() == "custom":
        return fn(data, rank, generator=generator, W=W, H=H)
    starts = [fn(data.problem(b), rank, generator=generator[b]) for b in range(data.batch)]
    return torch.stack([w for w, _ in starts]), torch.stack([h for _, h in starts])


@register_init("l1-init")
def l1_init(
    data: Data, rank: int, *, generator: torch.Generator, hals_iter: int = 10, tol: float = 1e-6, **_
) -> tuple[Tensor, Tensor]:
    r"""The start of L1-NMF in its authors' experiments: random, least-squares scaled, balanced,
    then a few Frobenius HALS iterations.

    1. W, H uniform in [0, 1);
    2. W scaled by the least-squares factor :math:`lpha = \langle XH^T, W
angle /
       \langle HH^T, W^TW
angle` (the best multiple of WH for X in the Frobenius norm);
    3. balancing: :math:`W_{:k} \leftarrow d_k W_{:k}`, :math:`H_{k:} \leftarrow H_{k:}/d_k`
       with :math:`d_k = \sqrt{\|H_{k:}\|_1 / \|W_{:k}\|_1}`, so that the column sums of W
       equal the row sums of H;
    4. up to ``hals_iter`` iterations of Frobenius NMF by HALS (W then H, one sweep each:
       :func:`kernels.hals_nnls_`; on sparse X through its support only), stopped early when
       :math:`\|X - WH\|_F^2 / (\sum X \max X)` decreases by less than ``tol`` in an
       iteration (the authors' :math:`\|X - WH\|_F^2 / \sum X` for their data, of max 1,
       made independent of the scale of X).

    This is the start of Seraghiti, Gillis et al.'s scripts (their Table 7.1), with the
    same early stop as their Frobenius NMF. Overridable: pass ``init=`` another registered
    name to the model, or call this function with another ``hals_iter`` and give the
    result as ``init="custom"``.

    References
    ----------
    G. Seraghiti, N. Gillis et al., "Weighted L1 NMF for data with false zeros",
    arXiv 2603.29715 (code: github.com/giovanniseraghiti/wL1-NMF).
    N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020.
    """
    m, n = data.shape
    like = dict(device=data.device, dtype=data.dtype, generator=generator)
    W = torch.rand(m, rank, **like)
    H = torch.rand(rank, n, **like)
    tiny = torch.finfo(data.dtype).tiny
    XHt = kernels.x_ht(data.X, H, data.X_t)
    alpha = (XHt * W).sum() / (kernels.gram(H, transpose=True) * kernels.gram(W)).sum().clamp_min(tiny)
    W.mul_(alpha)
    d = torch.sqrt(H.sum(1) / W.sum(0).clamp_min(tiny))
    W.mul_(d)
    H.div_(d.clamp_min(tiny).unsqueeze(1))
    data_t = data.T
    values = data.values if data.sparse else data.X
    total = (kernels.data_sum(data.X) * (values.amax() if values.numel() else 0.0)).clamp_min(tiny)
    Wt = W.mT.contiguous()

    def scaled_error():  # ||X - WH||_F^2 / (sum(X) max(X)), the authors' Frobenius objective for max X = 1
        return float(2 * kernels.frobenius_loss(data.X, Wt.mT, H, data.support) / total)

    previous = scaled_error() if tol > 0 and hals_iter > 0 else None
    for _ in range(hals_iter):
        A = kernels.wt_x(H.mT, data_t.X, data_t.X_t)
        kernels.hals_nnls_(Wt, A, kernels.gram(H, transpose=True), max_sweeps=1, delta=0.0)
        W = Wt.mT
        kernels.hals_nnls_(H, kernels.wt_x(W, data.X, data.X_t), kernels.gram(W), max_sweeps=1, delta=0.0)
        if previous is not None:  # the early stop reads the device once per iteration (an initialisation, not a step)
            current = scaled_error()
            if previous - current < tol:
                break
            previous = current
    return Wt.mT.contiguous(), H


# ---------------------------------------------------------------------------- CP
@register_init("random", family="cp")
def cp_random_init(T: Tensor, mask: Tensor | None, rank: int, *, generator: torch.Generator) -> list[Tensor]:
    """Uniform [0, 1) factors scaled so that the CP tensor has the norm of the observed T."""
    factors = [torch.rand(s, rank, generator=generator, device=T.device, dtype=T.dtype) for s in T.shape]
    observed = T if mask is None else torch.where(mask, T, 0.0)
    model_norm = torch.linalg.vector_norm(kernels.cp_reconstruct(factors)).clamp_min(torch.finfo(T.dtype).tiny)
    per_mode = (torch.linalg.vector_norm(observed) / model_norm) ** (1.0 / T.dim())
    return [F * per_mode for F in factors]


@register_init("svd", family="cp")
def cp_svd_init(T: Tensor, mask: Tensor | None, rank: int, *, generator: torch.Generator) -> list[Tensor]:
    """tensorly's nonnegative SVD initialisation (missing entries filled with the observed mean),
    weights folded into the first factor; tensorly's PyTorch backend is selected locally."""
    import tensorly as tl
    from tensorly.decomposition._cp import initialize_cp

    filled = T if mask is None else torch.where(mask, T, T[mask].mean())
    # tensorly's thresholds are absolute: it sees T / max(T), and the scale goes back into
    # the first factor, so that the start of c T is the start of T with factor 0 times c
    scale = filled.amax().clamp_min(torch.finfo(T.dtype).tiny)
    # tensorly allocates some of its tensors on the default device: make it T's, locally
    with tl.backend_context("pytorch"), torch.device(T.device):
        weights, factors = initialize_cp(filled / scale, rank, init="svd", non_negative=True)
    factors = [F.to(device=T.device, dtype=T.dtype).clone() for F in factors]
    factors[0] = factors[0] * weights * scale
    return factors


def initialize_cp(T: Tensor, mask: Tensor | None, rank: int, init: str, *, generator, batch: int | None = None) -> list[Tensor]:
    """Initial CP factors by the registered ``family="cp"`` initialisation ``init``.

    For a batch (T of shape (B, I_1, ..., I_N)) ``generator`` is a list of B generators and
    each tensor is initialised on its own; the factors are then (B, I_n, r).
    """
    fn = get_init(init, family="cp")
    if batch is None:
        return fn(T, mask, rank, generator=generator)
    starts = [fn(T[b], None if mask is None else mask[b], rank, generator=generator[b]) for b in range(batch)]
    return [torch.stack([s[n] for s in starts]) for n in range(len(starts[0]))]


# ---------------------------------------------------------------------------- streaming
def random_init_blocks(source, rank: int, block_size: int, *, generator: torch.Generator, device, dtype,
                       H_device=None, keeps_H: bool = True, pin_memory: bool = True) -> tuple[Tensor, Tensor | None]:
    """:func:`random_init` for X read in column blocks: the mean of X by one pass (the first,
    in which the source checks every block), then the same draws as ``random_init`` on ``device``."""
    from .blocks import iter_device_blocks

    total = torch.zeros((), device=device, dtype=dtype)
    missing = getattr(source, "allow_nan", False)  # NaN entries are missing: the mean of the others
    count = torch.zeros((), device=device, dtype=dtype)
    for _, _, X_j in iter_device_blocks(source, block_size, device, dtype, pin_memory=pin_memory):
        if missing:
            total = total + X_j.nansum()
            count = count + (~torch.isnan(X_j)).sum()
        else:
            total = total + X_j.sum()
        del X_j
    m, n = source.shape
    like = dict(device=device, dtype=dtype, generator=generator)
    scale = torch.sqrt(total / (count.clamp_min(1) if missing else m * n) / rank)
    W = torch.rand(m, rank, **like).mul_(scale)
    H = torch.rand(rank, n, **like).mul_(scale).to(H_device or device) if keeps_H else None
    return W, H
