r"""Batched NNLS of many short vectors against one dictionary: the arithmetic of the NNLS layer.

For a batch of rows ``x`` (B x m) and a dictionary W (m x r), each code solves

.. math:: h_b = \arg\min_{h \ge 0}\; D(x_b \mid W h) + \lambda \mathbf{1}^T h

with D the Frobenius loss :math:`\tfrac12\|x - Wh\|^2` or the generalised KL
divergence. Codes are stored as rows (B x r), so that every product is one GEMM
over the batch: ``x W`` (B x r) and ``h W^T W`` (B x r).

Every function here is pure (no in-place change of an input) and made of plain
tensor operations with a fixed number of iterations, so that autograd can
record them (the unrolled backward), ``torch.compile`` can trace them and
``torch.func.vmap`` can batch them.

References
----------
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for
linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009.
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization",
NIPS 2001.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "nnls_lipschitz",
    "nnls_pg_step",
    "nnls_pg_solve",
    "nnls_mu_step",
    "nnls_mu_solve",
    "nnls_stationarity",
    "nnls_implicit_vjp",
]


def nnls_lipschitz(G: Tensor) -> Tensor:
    """Lipschitz constant of the Frobenius gradient: the largest eigenvalue of ``G = W^T W``.

    Parameters
    ----------
    G : Tensor, shape (r, r)
        Symmetric positive semidefinite Gram matrix.

    Returns
    -------
    Tensor, 0-dim, differentiable with respect to G; floored at the dtype's tiny.
    """
    return torch.linalg.eigvalsh(G)[-1].clamp_min(torch.finfo(G.dtype).tiny)


def nnls_pg_step(y: Tensor, G: Tensor, xW: Tensor, step: Tensor, l1: float = 0.0) -> Tensor:
    r"""One projected-gradient step from ``y`` (B x r): :math:`\max(0, y - s(yG - xW + \lambda))`.

    Parameters
    ----------
    y : Tensor, shape (B, r)
        Point (the extrapolated point under FISTA).
    G : Tensor, shape (r, r)
        ``W^T W``.
    xW : Tensor, shape (B, r)
        ``x W`` (the rows of ``W^T x``).
    step : Tensor, 0-dim
        Step size, at most 1 / L with L = :func:`nnls_lipschitz` (G).
    l1 : float
        Weight of the L1 penalty on h.

    Returns
    -------
    Tensor, shape (B, r), new and nonnegative.
    """
    return torch.clamp(y - step * (y @ G - xW + l1), min=0.0)


def nnls_pg_solve(x: Tensor, W: Tensor, n_iter: int, l1: float = 0.0, h0: Tensor | None = None) -> Tensor:
    r"""Frobenius NNLS of every row of ``x`` by FISTA (accelerated projected gradient).

    .. math:: h \leftarrow \max\big(0,\, y - \tfrac1L (y W^TW - xW + \lambda)\big),\quad
              y \leftarrow h + \tfrac{t_k - 1}{t_{k+1}} (h - h_{\mathrm{prev}})

    Parameters
    ----------
    x : Tensor, shape (B, m)
    W : Tensor, shape (m, r), nonnegative (not required by the Frobenius loss).
    n_iter : int
        Fixed number of iterations (no data-dependent stopping, so the result is
        a differentiable function that autograd can unroll).
    l1 : float
    h0 : Tensor, shape (B, r), optional
        Start; zeros by default.

    Returns
    -------
    Tensor, shape (B, r)
    """
    G = W.transpose(0, 1) @ W
    xW = x @ W
    step = 1.0 / nnls_lipschitz(G)
    h = xW.new_zeros(xW.shape) if h0 is None else h0
    y = h
    t = 1.0
    for _ in range(n_iter):
        h_next = nnls_pg_step(y, G, xW, step, l1)
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        y = h_next + ((t - 1.0) / t_next) * (h_next - h)
        h, t = h_next, t_next
    return h


def nnls_mu_step(h: Tensor, x: Tensor, W: Tensor, G: Tensor, xW: Tensor, loss: str, l1: float = 0.0) -> Tensor:
    r"""One multiplicative update of the codes ``h`` (B x r), for ``x, W >= 0``.

    Frobenius: :math:`h \leftarrow h \odot \frac{xW}{hG + \lambda}`;
    KL: :math:`h \leftarrow h \odot \frac{(x / hW^T) W}{\mathbf{1}^T W + \lambda}`.
    Denominators are floored at the dtype's epsilon.
    """
    eps = torch.finfo(h.dtype).eps
    if loss == "frobenius":
        return h * xW / (h @ G + l1).clamp_min(eps)
    ratio = x / (h @ W.transpose(0, 1)).clamp_min(eps)
    return h * (ratio @ W) / (W.sum(dim=0) + l1).clamp_min(eps)


def nnls_mu_solve(x: Tensor, W: Tensor, n_iter: int, loss: str = "frobenius", l1: float = 0.0,
                  h0: Tensor | None = None) -> Tensor:
    r"""NNLS (Frobenius) or KL regression of every row of ``x`` by multiplicative updates.

    Parameters
    ----------
    x : Tensor, shape (B, m), nonnegative
    W : Tensor, shape (m, r), nonnegative
    n_iter : int
        Fixed number of iterations.
    loss : {"frobenius", "kl"}
    l1 : float
    h0 : Tensor, shape (B, r), optional
        Positive start; by default the least-squares scaling
        :math:`h_k = \max(xW, \epsilon)_k / (\mathbf{1}^T G)_k` (all positive).

    Returns
    -------
    Tensor, shape (B, r); entries stay positive (MU never reaches exact zeros).
    """
    G = W.transpose(0, 1) @ W
    xW = x @ W
    if h0 is None:
        tiny = torch.finfo(x.dtype).eps
        h0 = xW.clamp_min(tiny) / G.sum(dim=0).clamp_min(tiny)
    h = h0
    for _ in range(n_iter):
        h = nnls_mu_step(h, x, W, G, xW, loss, l1)
    return h


def nnls_stationarity(h: Tensor, x: Tensor, W: Tensor, loss: str, l1: float = 0.0) -> Tensor:
    r"""Gradient of the objective with respect to the codes, :math:`\nabla_h D(x \mid Wh) + \lambda`.

    Frobenius: :math:`hW^TW - xW + \lambda`; KL: :math:`(1 - x / hW^T) W + \lambda`.
    At the solution it vanishes on the free set {h > 0} and is >= 0 elsewhere (KKT).

    Returns
    -------
    Tensor, shape (B, r)
    """
    if loss == "frobenius":
        return h @ (W.transpose(0, 1) @ W) - x @ W + l1
    eps = torch.finfo(h.dtype).eps
    return (1.0 - x / (h @ W.transpose(0, 1)).clamp_min(eps)) @ W + l1


def nnls_implicit_vjp(grad_h: Tensor, h: Tensor, x: Tensor, W: Tensor, loss: str,
                      active_tol: float = 0.0) -> tuple[Tensor, Tensor]:
    r"""Vector-Jacobian product of the NNLS solution map by implicit differentiation of its KKT conditions.

    On the free set :math:`F = \{k : h_k > \tau\}` the stationarity
    :math:`g(h, x, W) = \nabla_h D(x \mid Wh) + \lambda = 0` holds; on the active
    set the code stays at 0 (``dh_A = 0``, strict complementarity assumed). So
    :math:`\mathcal H_{FF}\, dh_F = -\partial g_F`, with :math:`\mathcal H = W^TW`
    (Frobenius) or :math:`W^T \operatorname{diag}(x / (Wh)^2) W` (KL). With
    :math:`v_F = \mathcal H_{FF}^{-1} \bar h_F`, :math:`v_A = 0`, the cotangents are

    .. math:: \bar x = -\partial_x g^T v, \qquad \bar W = -\partial_W g^T v,

    in closed form: Frobenius :math:`\bar x = vW^T`,
    :math:`\bar W = x^Tv - W(h^Tv + v^Th)`; KL with :math:`y = hW^T`,
    :math:`u = vW^T`: :math:`\bar x = u / y`,
    :math:`\bar W = -(1 - x/y)^T v - (u x / y^2)^T h`.
    The cost is one batched r x r solve, whatever the number of solver iterations.

    Parameters
    ----------
    grad_h : Tensor, shape (B, r)
        Cotangent of the codes.
    h : Tensor, shape (B, r)
        The solution.
    x : Tensor, shape (B, m)
    W : Tensor, shape (m, r)
    loss : {"frobenius", "kl"}
    active_tol : float
        Entries with :math:`h_k \le \tau \max_k h_k` count as active (MU never
        reaches exact zeros; projected gradient does, and 0 suffices).

    Returns
    -------
    (grad_x, grad_W) : Tensors of shapes (B, m) and (m, r)

    References
    ----------
    B. Amos and J. Z. Kolter, "OptNet: differentiable optimization as a layer in
    neural networks", ICML 2017.
    """
    threshold = active_tol * h.amax(dim=-1, keepdim=True)
    free = (h > threshold).to(h.dtype)
    Wt = W.transpose(0, 1)
    if loss == "frobenius":
        hess = (Wt @ W).unsqueeze(0)
    else:
        y = (h @ Wt).clamp_min(torch.finfo(h.dtype).eps)
        hess = torch.einsum("bm,mr,ms->brs", x / (y * y), W, W)
    mask = free.unsqueeze(-1) * free.unsqueeze(-2)
    system = hess * mask + torch.diag_embed(1.0 - free)
    v = torch.linalg.solve(system, (grad_h * free).unsqueeze(-1)).squeeze(-1) * free
    if loss == "frobenius":
        grad_x = v @ Wt
        grad_W = x.transpose(0, 1) @ v - W @ (h.transpose(0, 1) @ v + v.transpose(0, 1) @ h)
    else:
        u = v @ Wt
        grad_x = u / y
        grad_W = -((1.0 - x / y).transpose(0, 1) @ v + (u * x / (y * y)).transpose(0, 1) @ h)
    return grad_x, grad_W
