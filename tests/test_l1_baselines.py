"""The L1-NMF paper's baselines (NS, SUB, L21-NMF) against literal NumPy versions of the
methods as the paper's code runs them, from the same start, with X of max 1 (where our
relative smoothing width equals the code's absolute one)."""

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF


def _problem(seed=0, m=25, n=30, r=3):
    rng = np.random.default_rng(seed)
    X = rng.random((m, r)) @ rng.random((r, n))
    X[rng.random((m, n)) < 0.05] = 3.0  # outliers
    X /= X.max()
    W, H = rng.random((m, r)), rng.random((r, n))
    W *= (X * (W @ H)).sum() / ((W @ H) ** 2).sum()
    return X, W, H


def reference_ns_update(X, W, H, sigma, steps=30):
    """The NS update of H (W fixed): averaged projected gradient steps on the smoothed L1 loss."""
    q = np.sqrt((W**2).sum(axis=1))
    L = q.sum() / sigma
    Q = q[:, None] * np.ones((1, X.shape[1]))
    H_old = H.copy()
    for k in range(1, steps + 1):
        Y = 2 / (k + 3) * H + (k + 1) / (k + 3) * H_old
        U = np.clip((W @ Y - X) / (sigma * Q), -1, 1)
        H_old = H
        H = np.maximum(0, Y - W.T @ U / L)
    return H


def reference_ns(X, W, H, iterations, sigma0=0.5):
    sigma = sigma0
    for it in range(1, iterations + 1):
        W = reference_ns_update(X.T, H.T, W.T, sigma).T
        H = reference_ns_update(X, W, H, sigma)
        sigma = sigma0 / (it + 1)
    return W, H


def reference_sub(X, W, H, iterations, beta=1e-3):
    for it in range(1, iterations + 1):
        G = np.sign(X - W @ H)
        gW, gH = -G @ H.T, -W.T @ G
        step = beta / (it + 1)
        W, H = np.maximum(0, W - step * gW), np.maximum(0, H - step * gH)
    return W, H


def reference_l21(X, W, H, iterations):
    for _ in range(iterations):
        d = 1 / np.maximum(1e-16, np.sqrt(((X - W @ H) ** 2).sum(axis=0)))
        W = W * (X * d @ H.T) / np.maximum(1e-16, W @ (H * d @ H.T))
        H = H * (W.T @ X * d) / np.maximum(1e-16, W.T @ W @ H * d)
    return W, H


@pytest.mark.parametrize("solver, loss, reference", [("ns", "l1", reference_ns), ("sub", "l1", reference_sub),
                                                      ("l21-mu", "l21", reference_l21)])
def test_baseline_follows_the_papers_code(solver, loss, reference):
    X, W0, H0 = _problem()
    for iterations in (1, 4):
        W_ref, H_ref = reference(X, W0, H0, iterations)
        model = NMF(3, loss=loss, solver=solver, dtype=torch.float64)
        model.fit(X, W=W0, H=H0, max_iter=iterations, tol=0)
        np.testing.assert_allclose(model.W.detach().numpy(), W_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.H.detach().numpy(), H_ref, rtol=1e-9, atol=1e-12)


def test_l21_is_robust_to_outlying_columns():
    # rank-3 columns and a few columns replaced by large noise: the L2,1 fit of the clean
    # columns is better than the Frobenius fit's
    rng = np.random.default_rng(1)
    clean = rng.random((40, 3)) @ rng.random((3, 60))
    X = clean.copy()
    X[:, :6] = 5 * rng.random((40, 6))
    errors = {}
    for loss in ("l21", "frobenius"):
        model = NMF(3, loss=loss, seed=0, dtype=torch.float64)
        model.fit(X, max_iter=300, tol=0)
        WH = model.reconstruct().numpy()
        errors[loss] = np.linalg.norm(clean[:, 6:] - WH[:, 6:]) / np.linalg.norm(clean[:, 6:])
    assert errors["l21"] < 0.5 * errors["frobenius"], errors


def test_l21_loss_on_sparse_x_equals_dense():
    from torchnmf_l1 import kernels

    rng = np.random.default_rng(2)
    X = rng.random((15, 12)) * (rng.random((15, 12)) < 0.4)
    W, H = torch.rand(15, 3, dtype=torch.float64), torch.rand(3, 12, dtype=torch.float64)
    dense = kernels.l21_loss(torch.from_numpy(X), W, H)
    sparse = kernels.l21_loss(torch.from_numpy(X).to_sparse_csr(), W, H)
    torch.testing.assert_close(sparse, dense)
    torch.testing.assert_close(dense, torch.linalg.vector_norm(torch.from_numpy(X) - W @ H, dim=0).sum())
