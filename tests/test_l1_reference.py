"""sCD and dense CD against a literal implementation of the paper's algorithm (its pseudocode
and the authors' code as described in the paper), from the same start.

Seraghiti, Gillis et al., "Weighted L1 NMF for data with false zeros", arXiv 2603.29715:
each iteration updates W then H; each entry is the weighted median of its scalar
subproblem over the nonzeros of its column (row) of X, with the zeros collapsed into one
breakpoint at 0 of weight lambda * (sum of the other factor's column minus its part on the
support); weights <= 1e-14 are dropped, a coordinate with no weight left gets 0, and a
median is raised to at least 1e-12. The reference below loops over entries in plain NumPy;
X is scaled to max 1, where our relative floors equal these absolute ones.
"""

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF


def weighted_median(x, y):
    """argmin_{alpha >= 0} sum_i y_i |x_i / y_i - alpha|, with the paper's safeguards."""
    keep = y > 1e-14
    if not keep.any():
        return 0.0
    points, weights = x[keep] / y[keep], y[keep]
    order = np.argsort(points, kind="stable")
    points, cumulative = points[order], np.cumsum(weights[order])
    k = int(np.argmax(cumulative >= cumulative[-1] / 2))
    return max(points[k], 1e-12)


def update_right_factor(X, W, H, lam):
    """One sweep over H (r x n) of sum_{X_ij > 0} |X_ij - (WH)_ij| + lam sum_{X_ij = 0} (WH)_ij."""
    H = H.copy()
    r, n = H.shape
    column_sums = W.sum(axis=0)
    for q in range(n):
        support = np.flatnonzero(X[:, q] > 0)
        fitted = W[support] @ H[:, q]
        for p in range(r):
            weights = W[support, p]
            targets = X[support, q] - fitted + weights * H[p, q]
            zero_weight = lam * (column_sums[p] - weights.sum())
            new = weighted_median(np.append(targets, 0.0), np.append(weights, zero_weight))
            fitted = fitted + weights * (new - H[p, q])
            H[p, q] = new
    return H


def reference_scd(X, W, H, lam, iterations):
    for _ in range(iterations):
        W = update_right_factor(X.T, H.T, W.T, lam).T  # W first, on the transposed problem
        H = update_right_factor(X, W, H, lam)
    return W, H


def _problem(m, n, r, zeros, seed):
    rng = np.random.default_rng(seed)
    X = rng.random((m, r)) @ rng.random((r, n)) + 0.1 * rng.random((m, n))
    X[rng.random((m, n)) < zeros] = 0.0
    X /= X.max()
    W, H = rng.random((m, r)), rng.random((r, n))
    W *= (X * (W @ H)).sum() / ((W @ H) ** 2).sum()  # the least-squares scale of the paper's start
    return X, W, H


@pytest.mark.parametrize("lam", [1.0, 0.3])
@pytest.mark.parametrize("zeros", [0.25, 0.8])
def test_scd_follows_the_paper_step_by_step(lam, zeros):
    X, W0, H0 = _problem(30, 24, 4, zeros, seed=1)
    loss = dict(loss="l1") if lam == 1.0 else dict(loss="wl1", zero_weight=lam)
    for iterations in (1, 3):
        W_ref, H_ref = reference_scd(X, W0, H0, lam, iterations)
        model = NMF(4, solver="scd", dtype=torch.float64, **loss)
        model.fit(X, W=W0, H=H0, max_iter=iterations, tol=0)
        np.testing.assert_allclose(model.W.detach().numpy(), W_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(model.H.detach().numpy(), H_ref, rtol=1e-9, atol=1e-12)


def test_the_reference_order_matters():
    # the check above can fail: H first (the order="HW" option) gives other iterates
    X, W0, H0 = _problem(30, 24, 4, 0.5, seed=2)
    W_ref, _ = reference_scd(X, W0, H0, 1.0, 2)
    model = NMF(4, loss="l1", solver="scd", order="HW", dtype=torch.float64)
    model.fit(X, W=W0, H=H0, max_iter=2, tol=0)
    assert not np.allclose(model.W.detach().numpy(), W_ref, rtol=1e-6)
    for order in ("WH", "wh"):  # the order named explicitly, in either case, is the paper's
        model = NMF(4, loss="l1", solver="scd", order=order, dtype=torch.float64)
        model.fit(X, W=W0, H=H0, max_iter=2, tol=0)
        np.testing.assert_allclose(model.W.detach().numpy(), W_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("zeros, lam", [(0.25, 1.0), (0.8, 0.3), (0.8, 1.0)])
def test_dense_cd_equals_scd_with_round_off_sized_entries(zeros, lam):
    # entries of 1e-18 in the start (round-off of an earlier fit): the safeguards drop their
    # weight in both solvers alike, so dense CD and sCD keep agreeing
    X, W0, H0 = _problem(40, 50, 5, zeros, seed=3)
    H0[:, ::7] = 1e-18
    W0[::5] = 1e-18
    loss = dict(loss="l1") if lam == 1.0 else dict(loss="wl1", zero_weight=lam)
    fits = {}
    for solver in ("scd", "cd-l1"):
        model = NMF(5, solver=solver, dtype=torch.float64, **loss)
        result = model.fit(X, W=W0, H=H0, max_iter=6, tol=0)
        fits[solver] = (model.W.detach().numpy(), model.H.detach().numpy(), result)
    np.testing.assert_allclose(fits["cd-l1"][0], fits["scd"][0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(fits["cd-l1"][1], fits["scd"][1], rtol=1e-8, atol=1e-12)
    result = fits["scd"][2]
    assert fits["cd-l1"][2].final_objective == pytest.approx(result.final_objective, rel=1e-10)
    assert np.abs(fits["scd"][0]).max() < 10 * X.max() ** 0.5 * 10  # no entry blown up by a round-off weight
    if lam < 1:  # wL1 keeps a real fit where 80 % zeros make plain L1's optimum nearly all zero
        assert result.final_objective < 0.9 * result.objective[0] and (fits["scd"][0] > 1e-6).mean() > 0.3


def test_exact_option_keeps_the_exact_minimiser():
    X, W0, H0 = _problem(20, 16, 3, 0.5, seed=4)
    exact = NMF(3, loss="l1", solver="scd", safeguard="exact", dtype=torch.float64)
    exact.fit(X, W=W0, H=H0, max_iter=5, tol=0)
    assert (exact.H.detach() == 0).any()  # exact zeros, which the paper's floor of 1e-12 never gives
    paper = NMF(3, loss="l1", solver="scd", dtype=torch.float64)
    paper.fit(X, W=W0, H=H0, max_iter=5, tol=0)
    H = paper.H.detach()
    assert ((H == 0) | (H >= 1e-12 * X.max() ** 0.5 * (1 - 1e-12))).all()


def test_paper_stopping_rule():
    X, W0, H0 = _problem(30, 24, 4, 0.5, seed=5)
    model = NMF(4, loss="l1", solver="scd", stopping="paper", dtype=torch.float64)
    result = model.fit(X, W=W0, H=H0, max_iter=200, tol=1e-3, check_every=1)
    ratios = [v / X.sum() for v in result.objective]
    assert result.converged and result.n_iter < 200
    assert ratios[-2] - ratios[-1] < 1e-3  # stopped at the first decrease below tol ...
    assert all(a - b >= 1e-3 for a, b in zip(ratios[:-2], ratios[1:-1]))  # ... and not before
