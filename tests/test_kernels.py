"""Every kernel against a slow, obviously correct reference (dense numpy brute force)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from torchnmf_l1 import kernels
from torchnmf_l1.kernels import losses as losses_module
from torchnmf_l1.kernels import mu as mu_module
from torchnmf_l1.kernels import products as products_module

LAYOUTS = ["dense", "coo", "csr"]


def random_data(m=13, n=11, r=3, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n)) * (rng.random((m, n)) < density)
    X[0, 0] = 0.7  # never all zero
    W = rng.random((m, r))
    H = rng.random((r, n))
    return X, W, H


def as_layout(X: np.ndarray, layout: str, device, dtype) -> torch.Tensor:
    T = torch.as_tensor(X, device=device, dtype=dtype)
    if layout == "coo":
        return T.to_sparse_coo()
    if layout == "csr":
        return T.to_sparse_csr()
    return T


def t(a, device, dtype):
    return torch.tensor(np.array(a), device=device, dtype=dtype)  # a copy: kernels ending in _ work in place


def close(actual, expected, dtype, what, rtol=None):
    tolerance = {torch.float32: 2e-4, torch.float64: 1e-10}[dtype] if rtol is None else rtol
    torch.testing.assert_close(
        actual.detach().cpu().double(),
        torch.as_tensor(np.asarray(expected), dtype=torch.float64),
        rtol=tolerance,
        atol=tolerance,
        msg=lambda m: f"{what}: {m}",
    )


# ----------------------------------------------------------------------------- products
def test_gram(device, dtype):
    _, W, H = random_data()
    close(kernels.gram(t(W, device, dtype)), W.T @ W, dtype, "W^T W")
    close(kernels.gram(t(H, device, dtype), transpose=True), H @ H.T, dtype, "H H^T")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_products_with_x(device, dtype, layout):
    X, W, H = random_data()
    Xt = as_layout(X, layout, device, dtype)
    close(kernels.x_ht(Xt, t(H, device, dtype)), X @ H.T, dtype, f"X H^T ({layout})")
    close(kernels.wt_x(t(W, device, dtype), Xt), W.T @ X, dtype, f"W^T X ({layout})")
    if layout != "dense":
        X_t = torch.as_tensor(X.T.copy(), device=device, dtype=dtype).to_sparse_csr()
        close(kernels.wt_x(t(W, device, dtype), Xt, X_t), W.T @ X, dtype, "W^T X from X_t")
    close(kernels.frobenius_norm_sq(Xt), (X**2).sum(), dtype, "||X||^2")
    close(kernels.data_sum(Xt), X.sum(), dtype, "sum X")


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_support_and_wh_on_support(device, dtype, layout, monkeypatch):
    X, W, H = random_data()
    Xt = as_layout(X, layout, device, dtype)
    rows, cols = kernels.support_indices(Xt)
    values = kernels.sparse_values(Xt)
    r_np, c_np = rows.cpu().numpy(), cols.cpu().numpy()
    assert rows.dtype == torch.int64 and cols.dtype == torch.int64
    assert sorted(zip(r_np, c_np)) == sorted(zip(*np.nonzero(X)))
    close(values, X[r_np, c_np], dtype, "values in support order")
    expected = (W @ H)[r_np, c_np]
    close(kernels.wh_on_support(t(W, device, dtype), t(H, device, dtype), rows, cols), expected, dtype, "WH on support")
    # the chunked path gives the same entries
    monkeypatch.setattr(products_module, "_GATHER_ELEMENTS", 7)
    close(kernels.wh_on_support(t(W, device, dtype), t(H, device, dtype), rows, cols), expected, dtype, "chunked")
    # the sampled product from the CSR row pointer, alone and for a block-diagonal batch
    crow = torch.as_tensor(np.concatenate([[0], np.cumsum(np.count_nonzero(X, axis=1))]), device=device)
    close(kernels.wh_on_support(t(W, device, dtype), t(H, device, dtype), rows, cols, crow), expected, dtype, "sampled")
    m, n = X.shape
    batch = kernels.Support(torch.cat([rows, rows + m]), torch.cat([cols, cols + n]), None, None,
                            torch.cat([crow, crow[1:] + crow[-1]]))
    W2, H2 = np.stack([W, 2 * W]), np.stack([H, H[:, ::-1]])
    expected2 = np.concatenate([(W2[b] @ H2[b])[r_np, c_np] for b in range(2)])
    close(kernels.wh_on_support(t(W2, device, dtype), t(H2.copy(), device, dtype), batch.rows, batch.cols, batch.crow),
          expected2, dtype, "sampled, batch")


def test_support_indices_rejects_dense():
    with pytest.raises(TypeError, match="sparse tensor"):
        kernels.support_indices(torch.ones(2, 2))


# ----------------------------------------------------------------------------- losses
def ref_beta(X, Y, beta):
    eps = 1e-300
    if beta == 2:
        return 0.5 * ((X - Y) ** 2).sum()
    if beta == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            xlog = np.where(X > 0, X * np.log(np.where(X > 0, X, 1) / Y), 0.0)
        return (xlog - X + Y).sum()
    if beta == 0:
        return (X / Y - np.log(X / Y) - 1).sum()
    return ((X**beta + (beta - 1) * Y**beta - beta * X * Y ** (beta - 1)) / (beta * (beta - 1))).sum() + 0 * eps


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("beta", [2.0, 1.0, 1.5, 0.5, 3.0])
def test_beta_losses_on_data_with_zeros(device, dtype, layout, beta, monkeypatch):
    X, W, H = random_data()
    Xt = as_layout(X, layout, device, dtype)
    Wt, Ht = t(W, device, dtype), t(H, device, dtype)
    expected = ref_beta(X, W @ H, beta)
    close(kernels.beta_divergence(Xt, Wt, Ht, beta), expected, dtype, f"beta={beta} ({layout})")
    if beta == 2.0:
        close(kernels.frobenius_loss(Xt, Wt, Ht), expected, dtype, "frobenius")
    if beta == 1.0:
        close(kernels.kl_divergence(Xt, Wt, Ht), expected, dtype, "kl")
    if layout != "dense" and beta not in (1.0, 2.0):
        monkeypatch.setattr(losses_module, "_BLOCK_ELEMENTS", 20)  # WH one or two columns at a time
        close(kernels.beta_divergence(Xt, Wt, Ht, beta), expected, dtype, "blocked sparse beta")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_is_divergence(device, dtype, layout):
    X, W, H = random_data(density=1.1)
    X = X + 0.1  # positive data
    Xt = as_layout(X, layout, device, dtype)
    expected = ref_beta(X, W @ H, 0)
    close(kernels.is_divergence(Xt, t(W, device, dtype), t(H, device, dtype)), expected, dtype, "IS", rtol=1e-3 if dtype == torch.float32 else None)
    close(kernels.beta_divergence(Xt, t(W, device, dtype), t(H, device, dtype), 0.0), expected, dtype, "beta=0",
          rtol=1e-3 if dtype == torch.float32 else None)


def test_is_divergence_is_infinite_on_sparse_data_with_zeros(device):
    X, W, H = random_data()
    Xt = as_layout(X, "csr", device, torch.float64)
    assert torch.isinf(kernels.is_divergence(Xt, t(W, device, torch.float64), t(H, device, torch.float64)))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("zero_weight", [1.0, 0.25, 0.0])
def test_l1_losses(device, dtype, layout, zero_weight):
    X, W, H = random_data()
    Xt = as_layout(X, layout, device, dtype)
    Wt, Ht = t(W, device, dtype), t(H, device, dtype)
    WH = W @ H
    expected = np.where(X != 0, np.abs(X - WH), zero_weight * WH).sum()
    close(kernels.weighted_l1_loss(Xt, Wt, Ht, zero_weight), expected, dtype, f"wl1 {zero_weight} ({layout})")
    close(kernels.l1_loss(Xt, Wt, Ht), np.abs(X - WH).sum(), dtype, f"l1 ({layout})")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relative_error(device, dtype, layout):
    X, W, H = random_data()
    Xt = as_layout(X, layout, device, dtype)
    expected = np.linalg.norm(X - W @ H) / np.linalg.norm(X)
    close(kernels.relative_error(Xt, t(W, device, dtype), t(H, device, dtype)), expected, dtype, "relative error")


# ----------------------------------------------------------------------------- element-wise
def test_elementwise(device, dtype):
    eps = torch.finfo(dtype).eps
    assert kernels.eps_like(torch.ones(1, dtype=dtype)) == eps
    num = torch.tensor([1.0, 2.0, 3.0], device=device, dtype=dtype)
    den = torch.tensor([0.0, 4.0, -1.0], device=device, dtype=dtype)
    close(kernels.safe_div(num, den), [1.0 / eps, 0.5, 3.0 / eps], dtype, "safe_div")
    close(kernels.safe_div(num, den, eps=0.5), [2.0, 0.5, 6.0], dtype, "safe_div eps")
    a = torch.tensor([-1.0, 0.5, -0.0, 2.0], device=device, dtype=dtype)
    out = kernels.project_nonneg_(a)
    assert out is a
    close(a, [0.0, 0.5, 0.0, 2.0], dtype, "projection")
    _, W, H = random_data()
    W[:, 1] = 0.0
    Wn, norms = kernels.normalize_columns(t(W, device, dtype))
    close(norms, np.linalg.norm(W, axis=0), dtype, "column norms")
    close(Wn * norms, W, dtype, "W_normalized * norms == W")
    close(torch.linalg.vector_norm(Wn, dim=0), [1.0, 0.0, 1.0], dtype, "unit columns, zero column stays zero")
    Hn, hnorms = kernels.normalize_rows(t(H, device, dtype), p=1)
    close(hnorms, np.abs(H).sum(axis=1), dtype, "row 1-norms")
    close(Hn * hnorms[:, None], H, dtype, "rows scaled back")


# ----------------------------------------------------------------------------- SVD
@pytest.mark.parametrize("layout", LAYOUTS)
def test_truncated_svd(device, layout):
    dtype = torch.float64
    rng = np.random.default_rng(3)
    m, n, k = 60, 50, 4
    U0, _ = np.linalg.qr(rng.standard_normal((m, 8)))
    V0, _ = np.linalg.qr(rng.standard_normal((n, 8)))
    S0 = np.array([10.0, 7.0, 5.0, 3.0, 0.01, 0.005, 0.002, 0.001])
    X = (U0 * S0) @ V0.T
    X = X * (np.abs(X) > 0.02)  # a sparse pattern; singular values change but stay well separated
    Xt = as_layout(X, layout, device, dtype)
    g = torch.Generator(device=device).manual_seed(0)
    U, S, Vh = kernels.truncated_svd(Xt, k, generator=g)
    Uref, Sref, Vhref = np.linalg.svd(X)
    close(S, Sref[:k], dtype, "singular values", rtol=1e-8)
    close(U @ torch.diag(S) @ Vh, (Uref[:, :k] * Sref[:k]) @ Vhref[:k], dtype, "rank-k approximation", rtol=1e-7)
    assert U.shape == (m, k) and Vh.shape == (k, n)


def test_truncated_svd_randomized_path_is_seeded():
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((200, 5)) @ rng.random((5, 150)) + 1e-6 * rng.random((200, 150)))
    sparse = X.to_sparse_csr()
    a = kernels.truncated_svd(sparse, 3, generator=torch.Generator().manual_seed(5))
    b = kernels.truncated_svd(sparse, 3, generator=torch.Generator().manual_seed(5))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    close(a[1], np.linalg.svd(X.numpy(), compute_uv=False)[:3], torch.float64, "randomized SVD", rtol=1e-8)


# ----------------------------------------------------------------------------- HALS
def ref_hals_sweep(H, A, B, l1, l2):
    H = H.copy()
    for k in range(H.shape[0]):
        numerator = A[k] - B[k] @ H + B[k, k] * H[k] - l1
        H[k] = np.maximum(0.0, numerator / (B[k, k] + l2))
    return H


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.3, 0.0), (0.0, 0.7), (0.2, 0.5)])
def test_hals_sweep_matches_reference(device, dtype, l1, l2):
    X, W, H = random_data(m=9, n=14, r=4)
    A, B = W.T @ X, W.T @ W
    expected = ref_hals_sweep(H, A, B, l1, l2)
    Ht = t(H, device, dtype)
    change = kernels.hals_sweep_(Ht, t(A, device, dtype), t(B, device, dtype), l1, l2)
    close(Ht, expected, dtype, "one HALS sweep")
    close(change, ((expected - H) ** 2).sum(), dtype, "returned change")


def test_hals_sweep_on_non_contiguous_factor(dtype):
    X, W, H = random_data(m=9, n=14, r=4)
    # a transposed view (as for W^T) is updated in place too
    Ht = torch.as_tensor(H.T.copy(), dtype=dtype).transpose(0, 1)
    assert not Ht.is_contiguous()
    kernels.hals_sweep_(Ht, t(W.T @ X, "cpu", dtype), t(W.T @ W, "cpu", dtype))
    close(Ht, ref_hals_sweep(H, W.T @ X, W.T @ W, 0, 0), dtype, "sweep on a view")


def test_hals_sweep_keeps_rows_positive():
    X, W, H = random_data(m=9, n=14, r=3)
    A = W.T @ X
    A[1] = -1.0  # row 1 of the solution is exactly zero
    Ht = torch.tensor(H)
    kernels.hals_sweep_(Ht, torch.as_tensor(A), torch.as_tensor(W.T @ W), keep_rows_positive=True)
    floor = torch.finfo(Ht.dtype).eps * Ht.sum(dim=1).max() / Ht.shape[1]  # eps of the dtype (the paper: 1e-16 in double)
    assert torch.all(Ht[1] > 0)
    torch.testing.assert_close(Ht[1], floor.expand(14), rtol=1e-12, atol=0)
    Ht2 = torch.tensor(H)
    kernels.hals_sweep_(Ht2, torch.as_tensor(A), torch.as_tensor(W.T @ W))
    assert torch.all(Ht2[1] == 0)


def test_hals_nnls_solves_nnls(device, dtype):
    rng = np.random.default_rng(1)
    W = rng.random((30, 4))
    X = rng.random((30, 6)) - 0.2
    expected = np.stack([scipy.optimize.nnls(W, X[:, j])[0] for j in range(X.shape[1])], axis=1)
    H = torch.ones(4, 6, device=device, dtype=dtype)
    kernels.hals_nnls_(H, t(W.T @ X, device, dtype), t(W.T @ W, device, dtype), max_sweeps=3000, delta=1e-7)
    close(H, expected, dtype, "NNLS solution", rtol=1e-5 if dtype == torch.float64 else 1e-3)
    # delta=0: exactly max_sweeps sweeps, the same as that many single sweeps
    H2, H3 = (torch.ones(4, 6, device=device, dtype=dtype) for _ in range(2))
    kernels.hals_nnls_(H2, t(W.T @ X, device, dtype), t(W.T @ W, device, dtype), max_sweeps=7, delta=0)
    for _ in range(7):
        kernels.hals_sweep_(H3, t(W.T @ X, device, dtype), t(W.T @ W, device, dtype))
    torch.testing.assert_close(H2, H3, rtol=1e-12 if dtype == torch.float64 else 1e-5, atol=0)


def test_hals_nnls_masked_stop_equals_early_return(dtype):
    """The device-side stop: sweeps after a problem's stopping point leave it unchanged, so the
    result equals sweeping one at a time and stopping at the rule (a host-side reference)."""
    rng = np.random.default_rng(3)
    W, X = rng.random((25, 5)), rng.random((25, 8))
    A, B = t(W.T @ X, "cpu", dtype), t(W.T @ W, "cpu", dtype)
    delta = 0.02
    ref = torch.ones(5, 8, dtype=dtype)
    first = None
    stopped_after = None
    for sweep in range(1, 51):
        change = float(kernels.hals_sweep_(ref, A, B))
        if first is None:
            first = change
        elif change <= delta * delta * first:
            stopped_after = sweep
            break
    assert stopped_after is not None and 2 < stopped_after < 50, "the scenario must stop early"
    H = torch.ones(5, 8, dtype=dtype)
    kernels.hals_nnls_(H, A, B, max_sweeps=50, delta=delta)
    torch.testing.assert_close(H, ref, rtol=0, atol=0)
    # batched: two copies of the problem, one frozen by `active`, stop independently
    Hb = torch.ones(2, 5, 8, dtype=dtype)
    kernels.hals_nnls_(Hb, A.expand(2, -1, -1), B.expand(2, -1, -1), max_sweeps=50, delta=delta,
                       active=torch.tensor([True, False]))
    torch.testing.assert_close(Hb[0], ref, rtol=1e-12 if dtype == torch.float64 else 1e-4, atol=0)
    assert torch.equal(Hb[1], torch.ones(5, 8, dtype=dtype))


def test_hals_nnls_penalties_and_proximal_term():
    rng = np.random.default_rng(2)
    W, X, H0 = rng.random((20, 3)), rng.random((20, 5)), rng.random((3, 5))
    l1, l2, delta = 0.1, 0.3, 0.5
    # min 1/2||X - WH||^2 + l1 sum H + l2/2 ||H||^2 + delta/2 ||H - H0||^2, by scipy on the stacked problem
    A = W.T @ X + delta * H0
    B = W.T @ W + delta * np.eye(3)
    H = torch.zeros(3, 5, dtype=torch.float64)
    kernels.hals_nnls_(H, torch.as_tensor(A), torch.as_tensor(B), max_sweeps=5000, delta=1e-9, l1=l1, l2=l2)

    def objective(h):
        h = h.reshape(3, 5)
        return 0.5 * ((X - W @ h) ** 2).sum() + l1 * h.sum() + 0.5 * l2 * (h**2).sum() + 0.5 * delta * ((h - H0) ** 2).sum()

    best = scipy.optimize.minimize(objective, np.ones(15), bounds=[(0, None)] * 15, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-12})
    assert objective(H.numpy().ravel()) <= best.fun + 1e-9


# ----------------------------------------------------------------------------- MU
@pytest.mark.parametrize("beta", [2.0, 1.0, 0.5, 1.5, 0.0, 3.0])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_beta_mu_ratio_terms(device, dtype, beta, layout, monkeypatch):
    X, W, H = random_data()
    if beta <= 0:
        X = X + 0.2
    WH = W @ H
    num_ref = W.T @ (WH ** (beta - 2) * X)
    den_ref = W.T @ WH ** (beta - 1)
    Xt = as_layout(X, layout, device, dtype)
    support = None
    if layout != "dense":
        from torchnmf_l1.data import prepare_data

        data = prepare_data(Xt)
        Xt, support = data.X, data.support
        monkeypatch.setattr(mu_module, "_BLOCK_ELEMENTS", 20)
        variants = [(None, None), (data.X_t, data.perm_t)]
    else:
        variants = [(None, None)]
    for X_t, perm_t in variants:
        num, den = kernels.beta_mu_ratio_terms(Xt, t(W, device, dtype), t(H, device, dtype), beta, support, X_t, perm_t)
        close(num, num_ref, dtype, f"numerator beta={beta} {layout}", rtol=1e-3 if dtype == torch.float32 else None)
        close(den, den_ref, dtype, f"denominator beta={beta} {layout}", rtol=1e-3 if dtype == torch.float32 else None)


@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("transposed", [False, True])
def test_dense_mu_terms_in_blocks(device, dtype, beta, transposed, monkeypatch):
    """A large dense X is taken in blocks of columns (H update) or rows (W update, X^T): the same terms."""
    rng = np.random.default_rng(11)
    X, W, H = rng.random((6, 41)) + 0.1, rng.random((6, 3)), rng.random((3, 41))
    if transposed:
        X, W, H = X.T, H.T, W.T
    WH = W @ H
    num_ref, den_ref = W.T @ (WH ** (beta - 2) * X), W.T @ WH ** (beta - 1)
    monkeypatch.setattr(mu_module, "_MU_BLOCK_ELEMENTS", 20)  # blocks of 3 columns / 3 rows, a ragged last one
    args = [t(A, device, dtype) for A in (X, W, H)]
    num, den = kernels.beta_mu_ratio_terms(args[0], args[1], args[2], beta)
    close(num, num_ref, dtype, f"numerator in blocks, beta={beta}")
    close(den, den_ref, dtype, f"denominator in blocks, beta={beta}")


def test_wt_x_in_column_blocks(device, dtype, monkeypatch):
    rng = np.random.default_rng(12)
    X, W = rng.random((5, 23)), rng.random((5, 4))
    monkeypatch.setattr(products_module, "_GEMM_COLUMNS", 4)
    close(kernels.wt_x(t(W, device, dtype), t(X, device, dtype)), W.T @ X, dtype, "W^T X in column blocks")


def test_mu_update_and_exponent(device, dtype):
    assert kernels.mu_exponent(2.0) == 1.0 and kernels.mu_exponent(1.0) == 1.0 and kernels.mu_exponent(1.5) == 1.0
    assert kernels.mu_exponent(0.0) == 0.5 and kernels.mu_exponent(0.5) == pytest.approx(1 / 1.5)
    assert kernels.mu_exponent(3.0) == 0.5
    rng = np.random.default_rng(4)
    H, num, den = rng.random((3, 5)), rng.random((3, 5)), rng.random((3, 5)) + 0.1
    Ht = t(H, device, dtype)
    out = kernels.mu_update_(Ht, t(num, device, dtype), t(den, device, dtype), gamma=0.5, l1=0.2, l2=0.3)
    assert out is Ht
    close(Ht, H * (num / (den + 0.2 + 0.3 * H)) ** 0.5, dtype, "MU step")


def test_sparse_pattern_wt(device, dtype):
    from torchnmf_l1.data import prepare_data

    X, W, _ = random_data()
    data = prepare_data(torch.as_tensor(X, device=device, dtype=dtype).to_sparse_csr())
    new_values = torch.arange(1, data.nnz + 1, device=device, dtype=dtype)
    S = np.zeros_like(X)
    S[data.rows.cpu().numpy(), data.cols.cpu().numpy()] = new_values.cpu().numpy()
    for X_t, perm in [(None, None), (data.X_t, data.perm_t)]:
        out = kernels.sparse_pattern_wt(t(W, device, dtype), data.X, new_values, X_t, perm)
        close(out, W.T @ S, dtype, "W^T S")


# ----------------------------------------------------------------------------- SPA
def test_spa_finds_the_pure_columns(device, dtype):
    rng = np.random.default_rng(5)
    W = rng.random((12, 4))
    mix = rng.dirichlet(np.ones(4), size=20).T * 0.9  # strictly inside the hull
    X = np.concatenate([mix, np.eye(4)], axis=1)
    order = rng.permutation(X.shape[1])
    Xp = W @ X[:, order]
    picks = kernels.spa(t(Xp, device, dtype), 4)
    assert picks.dtype == torch.int64 and picks.device.type == torch.device(device).type
    pure = {int(np.nonzero(order == 20 + k)[0][0]) for k in range(4)}
    assert set(picks.cpu().tolist()) == pure
    with pytest.raises(ValueError, match="rank must be <= min"):
        kernels.spa(t(Xp, device, dtype), 13)


def test_bracketing_update_halves_the_step_at_each_change_of_direction():
    f64 = dict(dtype=torch.float64)
    value, step, direction = torch.tensor(1.0, **f64), torch.tensor(0.1, **f64), torch.tensor(0.0, **f64)
    expected_value, expected_step, expected_direction = 1.0, 0.1, 0
    # under, under, over, over, under (applied), under (not applied)
    for measured, apply in [(1.0, True), (1.0, True), (5.0, True), (5.0, True), (1.0, True), (1.0, False)]:
        value, step, direction = kernels.bracketing_update(value, torch.tensor(measured, **f64), 3.0, step, direction,
                                                           torch.tensor(apply))
        if apply:
            below = measured < 3.0
            if expected_direction == (-1 if below else 1):
                expected_step /= 2
            expected_value *= (1 - expected_step) if below else (1 + expected_step)
            expected_direction = 1 if below else -1
        assert float(value) == pytest.approx(expected_value, rel=1e-14) and float(step) == pytest.approx(expected_step)
        assert float(direction) == expected_direction
    assert expected_step == pytest.approx(0.025)  # two changes of direction


def test_restart_update_takes_every_step_and_resets_after_a_rise():
    x, x1 = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    state = kernels.RestartState(x, x, x, x, torch.tensor(0.05, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64),
                                 torch.tensor(False))
    rose = kernels.restart_update(state, x1, x1, torch.tensor(2.0, dtype=torch.float64))
    assert torch.equal(rose.x, x1) and torch.equal(rose.y, x1) and bool(rose.restarted) and float(rose.alpha) == 0.05
    again = kernels.restart_update(rose, 2 * x1, 2 * x1, torch.tensor(3.0, dtype=torch.float64))  # right after a restart: momentum
    alpha1 = (np.sqrt(0.05**4 + 4 * 0.05**2) - 0.05**2) / 2
    beta = 0.05 * 0.95 / (0.05**2 + alpha1)
    assert not bool(again.restarted) and float(again.alpha) == pytest.approx(alpha1)
    torch.testing.assert_close(again.y, 2 * x1 + beta * x1)
