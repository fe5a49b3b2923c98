"""Missing entries and entry weights: weighted HALS and weighted MU against brute force."""

import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchnmf_l1 import NMF, kernels
from torchnmf_l1.missing import MissingEntriesWarning

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def planted(m, n, r, seed, share=0.6, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=torch.float64)
    H = torch.rand(r, n, generator=g, dtype=torch.float64)
    mask = torch.rand(m, n, generator=g) < share
    start = (torch.rand(m, r, generator=g, dtype=torch.float64), torch.rand(r, n, generator=g, dtype=torch.float64))
    return W @ H + offset, mask, start


def weighted_objective(X, W, H, w, beta):
    WH = W @ H
    if beta == 2:
        d = 0.5 * (X - WH) ** 2
    elif beta == 1:
        d = torch.where(X > 0, X * torch.log(X / WH), 0.0) - X + WH
    elif beta == 0:
        d = X / WH - torch.log(X / WH) - 1
    else:
        d = (X**beta + (beta - 1) * WH**beta - beta * X * WH ** (beta - 1)) / (beta * (beta - 1))
    return float(torch.where(w > 0, w * d, 0.0).sum())


@pytest.mark.parametrize("layout", ["dense", "support"])
def test_one_row_update_is_the_weighted_nnls_minimiser(layout):
    # with r = 1 a HALS sweep is one coordinate per column: the exact weighted NNLS solution
    g = torch.Generator().manual_seed(3)
    m, n = 12, 9
    X = torch.rand(m, n, generator=g, dtype=torch.float64) - 0.3  # some columns have a negative optimum
    w = torch.rand(m, n, generator=g, dtype=torch.float64) * (torch.rand(m, n, generator=g) < 0.7)
    G = torch.rand(1, m, generator=g, dtype=torch.float64)
    F = torch.rand(1, n, generator=g, dtype=torch.float64)
    if layout == "dense":
        residual = kernels.weighted_residual(X, G.mT, F, w)
        kernels.weighted_hals_update_(F, G, residual, w)
    else:
        rows, cols = torch.nonzero(w > 0, as_tuple=True)
        support = kernels.Support(rows, cols, X[rows, cols])
        residual = kernels.weighted_residual(None, G.mT, F, w[rows, cols], support)
        kernels.weighted_hals_update_(F, G, residual, w[rows, cols], gather=rows, scatter=cols)
    for j in range(n):
        s = np.sqrt(w[:, j].numpy())
        expected = scipy.optimize.nnls(s[:, None] * G.mT.numpy(), s * X[:, j].numpy())[0] if s.any() else None
        if expected is not None:
            assert float(F[0, j]) == pytest.approx(float(expected[0]), abs=1e-12)


@pytest.mark.parametrize("sparse_mask", [False, True])
def test_transform_reaches_the_weighted_nnls_solution(sparse_mask):
    X, mask, _ = planted(25, 15, 3, seed=4, offset=0.05)
    X = X + 0.1 * torch.rand(X.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    w = torch.rand(X.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * mask
    model = NMF(3, solver="hals", seed=0)
    model.fit(X, max_iter=50)
    weights = w.to_sparse_csr() if sparse_mask else w
    H = model.transform(X, weights=weights, max_iter=3000, tol=0)
    Wn = model.W.detach().numpy()
    for j in range(X.shape[1]):
        s = np.sqrt(w[:, j].numpy())
        expected = scipy.optimize.nnls(s[:, None] * Wn, s * X[:, j].numpy())[0]
        np.testing.assert_allclose(H[:, j].numpy(), expected, atol=1e-7)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    m=st.integers(4, 20), n=st.integers(4, 20), r=st.integers(1, 4), share=st.floats(0.2, 1.0),
    beta=st.sampled_from([2.0, 1.5, 1.0, 0.5, 0.0, 3.0]), solver=st.sampled_from(["hals", "mu"]),
    sparse=st.booleans(), seed=st.integers(0, 10_000),
)
def test_weighted_objective_never_increases(m, n, r, share, beta, solver, sparse, seed):
    if solver == "hals" and beta != 2.0:
        solver = "mu"
    r = min(r, m, n)
    X, mask, (W0, H0) = planted(m, n, r, seed, share=share, offset=0.01)
    g = torch.Generator().manual_seed(seed + 1)
    w = (0.1 + torch.rand(m, n, generator=g, dtype=torch.float64)) * mask
    if not bool(mask.any()):
        return
    loss = "beta" if beta not in (2.0, 1.0, 0.0) else {2.0: "frobenius", 1.0: "kl", 0.0: "is"}[beta]
    kw = {"beta": beta} if loss == "beta" else {}
    values = []
    W, H = W0, H0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingEntriesWarning)
        for _ in range(6):
            model = NMF(r, loss=loss, solver=solver, **kw, **({"scale_init": False} if solver == "hals" else {}))
            model.fit(X, weights=w.to_sparse_csr() if sparse else w, W=W, H=H, max_iter=1, tol=0, warn=False)
            W, H = model.W.detach(), model.H.detach()
            values.append(weighted_objective(X, W, H, w, beta))
    start = weighted_objective(X, W0, H0, w, beta)
    previous = start
    for value in values:
        assert value <= previous * (1 + 1e-9) + 1e-12
        previous = value


@pytest.mark.parametrize("solver,loss", [("hals", "frobenius"), ("mu", "frobenius"), ("mu", "kl"), ("mu", "is")])
def test_sparse_mask_equals_dense_mask_and_nan(solver, loss):
    X, mask, (W0, H0) = planted(30, 20, 3, seed=7, offset=0.05)
    runs = []
    for kwargs in ({"mask": mask}, {"mask": mask.to_sparse_csr()}, {"weights": mask.double().to_sparse_coo()}):
        model = NMF(3, loss=loss, solver=solver)
        model.fit(X, W=W0, H=H0, max_iter=15, tol=0, **kwargs)
        runs.append((model.W.detach(), model.H.detach()))
    model = NMF(3, loss=loss, solver=solver)
    model.fit(torch.where(mask, X, float("nan")), W=W0, H=H0, max_iter=15, tol=0)
    runs.append((model.W.detach(), model.H.detach()))
    for W, H in runs[1:]:
        torch.testing.assert_close(W, runs[0][0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(H, runs[0][1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver,loss", [("hals", "frobenius"), ("mu", "kl")])
def test_zero_weight_is_missing_and_values_there_do_not_matter(solver, loss):
    X, mask, (W0, H0) = planted(25, 18, 3, seed=8, offset=0.05)
    w = (0.5 + torch.rand(X.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64))
    a = NMF(3, loss=loss, solver=solver)
    a.fit(X, weights=w * mask, W=W0, H=H0, max_iter=10, tol=0)
    garbage = torch.where(mask, X, 1e3)
    b = NMF(3, loss=loss, solver=solver)
    b.fit(garbage, weights=w, mask=mask, W=W0, H=H0, max_iter=10, tol=0)
    torch.testing.assert_close(a.W, b.W, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.H, b.H, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("solver,loss", [("hals", "frobenius"), ("mu", "frobenius"), ("mu", "kl")])
def test_all_observed_mask_gives_the_unweighted_iterates_exactly(solver, loss):
    X, _, (W0, H0) = planted(20, 15, 3, seed=10, offset=0.05)
    a = NMF(3, loss=loss, solver=solver)
    a.fit(X, mask=torch.ones(X.shape, dtype=torch.bool), W=W0, H=H0, max_iter=10, tol=0)
    b = NMF(3, loss=loss, solver=solver)
    b.fit(X, W=W0, H=H0, max_iter=10, tol=0)
    assert torch.equal(a.W, b.W) and torch.equal(a.H, b.H)


def test_constant_weights_do_not_change_the_mu_iterates():
    X, _, (W0, H0) = planted(20, 15, 3, seed=11, offset=0.05)
    a = NMF(3, loss="kl", solver="mu")
    a.fit(X, weights=torch.full(X.shape, 7.0, dtype=torch.float64), W=W0, H=H0, max_iter=10, tol=0)
    b = NMF(3, loss="kl", solver="mu")
    b.fit(X, W=W0, H=H0, max_iter=10, tol=0)
    torch.testing.assert_close(a.W, b.W, rtol=1e-11, atol=1e-13)
    assert a.result_.final_objective == pytest.approx(7 * b.result_.final_objective, rel=1e-10)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_held_out_entries_of_planted_data_are_recovered(layout):
    X, mask, _ = planted(80, 60, 4, seed=12, share=0.5)
    model = NMF(4, solver="hals", seed=0)
    model.fit(X, mask=mask.to_sparse_csr() if layout == "sparse" else mask, max_iter=2000, tol=1e-10)
    WH = (model.W @ model.H).detach()
    held_out = float((WH - X)[~mask].norm() / X[~mask].norm())
    assert held_out < 5e-3  # noise-free data: the fit's own error is of the same order
    assert model.result_.extra["relative_error"] < 5e-3


def test_a_row_with_no_observed_entry_keeps_its_start_and_warns():
    X, mask, (W0, H0) = planted(20, 15, 3, seed=13)
    mask[4] = False
    model = NMF(3, solver="hals", scale_init=False)
    with pytest.warns(MissingEntriesWarning, match="1 rows and 0 columns"):
        model.fit(X, mask=mask, W=W0, H=H0, max_iter=5, tol=0)
    torch.testing.assert_close(model.W[4].detach(), W0[4], rtol=0, atol=0)


def test_objective_and_sparse_x_with_mask():
    X, mask, (W0, H0) = planted(20, 15, 3, seed=14)
    Xs = torch.where(torch.rand(X.shape, generator=torch.Generator().manual_seed(1)) < 0.3, 0.0, X)
    a = NMF(3, solver="mu")
    a.fit(Xs.to_sparse_csr(), mask=mask, W=W0, H=H0, max_iter=5, tol=0)
    b = NMF(3, solver="mu")
    b.fit(Xs, mask=mask, W=W0, H=H0, max_iter=5, tol=0)
    torch.testing.assert_close(a.W, b.W, rtol=1e-10, atol=1e-12)
    expected = weighted_objective(Xs, a.W.detach(), a.H.detach(), mask.double(), 2.0)
    assert a.objective(Xs, mask=mask) == pytest.approx(expected, rel=1e-10)


def test_bad_masks_and_weights_are_refused():
    X, mask, _ = planted(10, 8, 2, seed=15)
    model = NMF(2)
    with pytest.raises(ValueError, match=r"mask must have X's shape \(10, 8\), got \(8, 10\)"):
        model.fit(X, mask=mask.T)
    with pytest.raises(TypeError, match="mask must be boolean"):
        model.fit(X, mask=mask.double())
    with pytest.raises(ValueError, match="weights has negative entries"):
        model.fit(X, weights=-torch.ones(10, 8))
    with pytest.raises(ValueError, match="weights contains NaN"):
        model.fit(X, weights=torch.full((10, 8), float("nan")))
    with pytest.raises(ValueError, match="no entry of X is observed"):
        model.fit(X, mask=torch.zeros(10, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="beta-divergence losses.*got loss 'l21'"):
        NMF(2, loss="l21").fit(X, mask=mask)
    with pytest.raises(ValueError, match="give the weight of the zeros through weights="):
        NMF(2, loss="wl1", zero_weight=0.1).fit(X, mask=mask)
    with pytest.raises(ValueError, match=r"solver 'cd-l1' does not take missing entries.*'scd'"):
        NMF(2, loss="l1", solver="cd-l1").fit(X, mask=mask)
    with pytest.raises(ValueError, match="one matrix"):
        NMF(2).fit(torch.stack([X, X]), mask=mask)
    before = (model.W.clone(), model.H.clone())
    with pytest.raises(ValueError):
        model.fit(X, weights=-torch.ones(10, 8))
    assert torch.equal(model.W, before[0]) and torch.equal(model.H, before[1])


def _cp_planted(seed, shape=(8, 7, 6), rank=3):
    g = torch.Generator().manual_seed(seed)
    factors = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    T = torch.einsum("ir,jr,kr->ijk", *factors)
    T = T + 0.05 * torch.rand(shape, generator=g, dtype=torch.float64)
    start = [torch.rand(s, rank, generator=g, dtype=torch.float64) for s in shape]
    return T, start, g


def test_cp_zero_one_weights_equal_the_mask_and_constant_weights_change_nothing():
    from torchnmf_l1 import NonnegativeCP

    T, start, g = _cp_planted(20)
    mask = torch.rand(T.shape, generator=g) < 0.6
    runs = {}
    for label, kwargs in (("mask", {"mask": mask}), ("weights", {"weights": mask.double()}),
                          ("constant", {"weights": torch.full(T.shape, 3.0, dtype=torch.float64)}), ("plain", {})):
        model = NonnegativeCP(3)
        model.fit(T, factors=[f.clone() for f in start], max_iter=15, tol=0, **kwargs)
        runs[label] = [f.detach() for f in model.factors]
    for a, b in zip(runs["mask"], runs["weights"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for a, b in zip(runs["constant"], runs["plain"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_cp_weighted_loss_never_increases():
    from torchnmf_l1 import NonnegativeCP

    T, start, g = _cp_planted(21)
    w = torch.rand(T.shape, generator=g, dtype=torch.float64) ** 2 * (torch.rand(T.shape, generator=g) < 0.8)
    factors = [f.clone() for f in start]
    values = []
    for _ in range(8):
        model = NonnegativeCP(3)
        model.fit(T, weights=w, factors=factors, max_iter=1, tol=0, warn=False)
        factors = [f.detach().clone() for f in model.factors]
        model_T = torch.einsum("ir,jr,kr->ijk", *factors)
        values.append(float(0.5 * (w * (T - model_T) ** 2).sum()))
        assert model.result_.final_objective == pytest.approx(values[-1], rel=1e-10)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:]))
    assert values[-1] < 0.5 * values[0]


def test_cp_bad_weights_are_refused():
    from torchnmf_l1 import NonnegativeCP

    T, _, _ = _cp_planted(22)
    with pytest.raises(ValueError, match="weights must have T's shape"):
        NonnegativeCP(2).fit(T, weights=torch.ones(3, 3))
    with pytest.raises(ValueError, match="weights has negative entries"):
        NonnegativeCP(2).fit(T, weights=-torch.ones(T.shape))
    with pytest.raises(ValueError, match="no entry of T has a positive weight"):
        NonnegativeCP(2).fit(T, weights=torch.zeros(T.shape))


def _weighted_l1_minimiser(x, f, c):
    """argmin_{h >= 0} sum_i c_i |x_i - f_i h| by brute force over the breakpoints and 0."""
    candidates = np.concatenate([[0.0], x[f > 0] / f[f > 0]])
    candidates = candidates[candidates >= 0]
    values = [np.sum(c * np.abs(x - f * h)) for h in candidates]
    return candidates[int(np.argmin(values))], min(values)


@pytest.mark.parametrize("kind", ["mask", "weights"])
def test_weighted_scd_step_is_the_weighted_l1_minimiser(kind):
    # r = 1: one sweep of H is the exact minimiser of each column's weighted L1 problem
    g = torch.Generator().manual_seed(30)
    m, n = 15, 10
    X = torch.rand(m, n, generator=g, dtype=torch.float64)
    X[torch.rand(m, n, generator=g) < 0.2] = 0.0  # observed zeros are data
    mask = torch.rand(m, n, generator=g) < 0.7
    c = (0.2 + torch.rand(m, n, generator=g, dtype=torch.float64)) * mask
    w = mask.double() if kind == "mask" else c
    model = NMF(1, loss="l1", safeguard="exact")
    model.fit(X, max_iter=3, warn=False)
    W = model.W.detach().clone()
    H = model.transform(X, **({"mask": mask} if kind == "mask" else {"weights": c}), max_iter=1, tol=0)
    for j in range(n):
        obs = w[:, j].numpy() > 0
        if not obs.any():
            continue
        _, best = _weighted_l1_minimiser(X[obs, j].numpy(), W[obs, 0].numpy(), w[obs, j].numpy())
        got = np.sum(w[obs, j].numpy() * np.abs(X[obs, j].numpy() - W[obs, 0].numpy() * float(H[0, j])))
        assert got == pytest.approx(best, rel=1e-12, abs=1e-14)


def test_weighted_scd_never_increases_and_ignores_missing_values():
    X, mask, (W0, H0) = planted(30, 25, 3, seed=31)
    g = torch.Generator().manual_seed(32)
    c = (0.5 + torch.rand(X.shape, generator=g, dtype=torch.float64)) * mask
    W, H = W0, H0
    values = [float((c * (X - W0 @ H0).abs()).sum())]
    for _ in range(5):
        model = NMF(3, loss="l1", safeguard="exact")
        model.fit(X, weights=c, W=W, H=H, max_iter=1, tol=0, warn=False)
        W, H = model.W.detach(), model.H.detach()
        values.append(float((c * (X - W @ H).abs()).sum()))
        assert model.result_.final_objective == pytest.approx(values[-1], rel=1e-10)
    assert all(b <= a * (1 + 1e-12) for a, b in zip(values, values[1:]))
    other = NMF(3, loss="l1", safeguard="exact")
    other.fit(torch.where(mask, X, 7.0), weights=c, W=W0, H=H0, max_iter=5, tol=0, warn=False)
    torch.testing.assert_close(other.W, W, rtol=1e-12, atol=1e-14)


def test_l1_with_an_all_observed_mask_is_the_unweighted_fit():
    X, _, (W0, H0) = planted(20, 15, 3, seed=33)
    a = NMF(3, loss="l1")
    a.fit(X, mask=torch.ones(X.shape, dtype=torch.bool), W=W0, H=H0, max_iter=4, tol=0, warn=False)
    b = NMF(3, loss="l1")
    b.fit(X, W=W0, H=H0, max_iter=4, tol=0, warn=False)
    assert torch.equal(a.W, b.W) and torch.equal(a.H, b.H)


@pytest.mark.parametrize("block_size", [4, 47])
def test_streaming_weighted_hals_takes_the_in_memory_iterates(block_size):
    from torchnmf_l1 import StreamingNMF

    X, mask, (W0, H0) = planted(30, 47, 3, seed=40)
    w = 0.5 + torch.rand(X.shape, generator=torch.Generator().manual_seed(41), dtype=torch.float64)
    memory = NMF(3, solver="hals", scale_init=False)
    memory.fit(X, mask=mask, weights=w, W=W0, H=H0, max_iter=8, tol=0)
    streamed = StreamingNMF(3, dtype=torch.float64, block_size=block_size)
    result = streamed.fit(torch.where(mask, X, float("nan")).numpy(), weights=w.numpy(), W=W0, H=H0, max_iter=8, tol=0)
    torch.testing.assert_close(streamed.W, memory.W.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(streamed.H, memory.H.detach(), rtol=1e-10, atol=1e-12)
    assert result.final_objective == pytest.approx(memory.result_.final_objective, rel=1e-9)
    masked = StreamingNMF(3, dtype=torch.float64, block_size=block_size)
    masked.fit(X.numpy(), mask=mask.numpy(), weights=w.numpy(), W=W0, H=H0, max_iter=8, tol=0)
    torch.testing.assert_close(masked.W, memory.W.detach(), rtol=1e-10, atol=1e-12)


def test_streaming_refuses_nan_without_a_mask_and_bad_weights():
    from torchnmf_l1 import StreamingNMF

    X, mask, _ = planted(10, 12, 2, seed=42)
    Xn = torch.where(mask, X, float("nan")).numpy()
    with pytest.raises(ValueError, match="NaN"):
        StreamingNMF(2, block_size=5).fit(Xn, max_iter=2)
    with pytest.raises(ValueError, match=r"weights\[:, 0:5\] has negative entries"):
        StreamingNMF(2, block_size=5).fit(X.numpy(), weights=-np.ones((10, 12)), max_iter=2)
    with pytest.raises(ValueError, match=r"mask must have X's shape \(10, 12\)"):
        StreamingNMF(2, block_size=5).fit(X.numpy(), mask=np.ones((12, 10), bool), max_iter=2)
    with pytest.raises(ValueError, match="'online' does not take missing entries"):
        StreamingNMF(2, solver="online", block_size=5).fit(X.numpy(), mask=mask.numpy(), max_iter=2)
