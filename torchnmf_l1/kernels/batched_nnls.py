r"""Batched NNLS of many short vectors against one dictionary: the arithmetic of the NNLS layer.

For a batch of rows ``x`` (B x m) and a dictionary W (m x r), each code solves

.. math:: h_b = \arg\min_{h \ge 0}\; D(x_b \mid W h) + \lambda \mathbf{1}^T h

with D the Frobenius loss :math:`\tfrac12\|x - Wh\|^2` or the generalised KL
divergence. Codes are stored as rows (B x r), so that every product is one GEMM
over the batch: ``x W`` (B x r) and ``h W^T W`` (B x r).

Every function here is pure (no in-place change of an input) and made of plain
tensor operations, so that autograd can record the iterations of the solvers of
:mod:`torchnmf_l1.solvers.nnls` (the unrolled backward), ``torch.compile`` can trace
them and ``torch.func.vmap`` can batch them.

References
----------
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for
linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009.
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization",
NIPS 2001.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "nnls_lipschitz",
    "nnls_pg_step",
    "nnls_mu_step",
    "nnls_mu_start",
    "nnls_objective",
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


def nnls_mu_start(xW: Tensor, G: Tensor) -> Tensor:
    r"""A positive start of MU for the codes: the least-squares scaling
    :math:`h_k = \max(xW, \epsilon)_k / (\mathbf{1}^T G)_k` (B x r)."""
    tiny = torch.finfo(xW.dtype).eps
    return xW.clamp_min(tiny) / G.sum(dim=0).clamp_min(tiny)


def nnls_objective(h: Tensor, x: Tensor, W: Tensor, loss: str, l1: float = 0.0) -> Tensor:
    r"""The objective :math:`\sum_b D(x_b \mid W h_b) + \lambda \mathbf{1}^T h_b` (0-dim)."""
    y = h @ W.mT
    penalty = l1 * h.sum() if l1 else 0.0
    if loss == "frobenius":
        return 0.5 * (x - y).square().sum() + penalty
    y = y.clamp_min(torch.finfo(h.dtype).eps)
    divergence = torch.where(x > 0, x * (torch.log(x.clamp_min(torch.finfo(x.dtype).tiny)) - torch.log(y)), 0.0) - x + y
    return divergence.sum() + penalty


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
