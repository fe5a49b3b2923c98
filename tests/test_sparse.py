"""Low-rank sparse component analysis: k-sparse codes against brute force, the identifiability
condition against exhaustive enumeration, planted factorizations recovered, bad input."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
import torch

from torchnmf_l1 import LRSCA, NotFittedError, ksparse_nnls, sparse_identifiability
from torchnmf_l1.kernels import ksparse_codes, largest_spark_set

F64 = torch.float64


def _planted(seed, m=30, R=5, k=2, n=60, signed=False):
    """W (m x R) and H (R x n) with k nonzeros per column at random supports."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(m, R, generator=g, dtype=F64) if signed else torch.rand(m, R, generator=g, dtype=F64)
    H = torch.zeros(R, n, dtype=F64)
    for j in range(n):
        values = 0.1 + torch.rand(k, generator=g, dtype=F64)
        if signed:
            values = values * torch.where(torch.rand(k, generator=g) < 0.5, -1.0, 1.0).to(F64)
        H[torch.randperm(R, generator=g)[:k], j] = values
    return W, H


def _matched(W_true, W):
    """The permutation of W's columns that best matches W_true's (cosine, Hungarian)."""
    C = torch.nn.functional.normalize(W_true, dim=0).T @ torch.nn.functional.normalize(W, dim=0)
    rows, cols = scipy.optimize.linear_sum_assignment(-C.abs().numpy())
    return cols, C.abs()[rows, cols]


# -- k-sparse codes -----------------------------------------------------------------------
def _brute_force_least_squares(W, X, k):
    best = torch.linalg.vector_norm(X, dim=0)
    for s in range(1, k + 1):
        for S in itertools.combinations(range(W.shape[1]), s):
            Z = torch.linalg.lstsq(W[:, list(S)], X).solution
            best = torch.minimum(best, torch.linalg.vector_norm(X - W[:, list(S)] @ Z, dim=0))
    return best


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sign_free_exact_codes_match_brute_force(k):
    g = torch.Generator().manual_seed(k)
    W, X = torch.randn(12, 6, generator=g, dtype=F64), torch.randn(12, 40, generator=g, dtype=F64)
    H = ksparse_nnls(W, X, k, nonnegative=False)
    assert int((H != 0).sum(dim=0).max()) <= k and bool((H < 0).any())
    torch.testing.assert_close(torch.linalg.vector_norm(X - W @ H, dim=0), _brute_force_least_squares(W, X, k),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["exact", "greedy"])
@pytest.mark.parametrize("nonnegative", [True, False])
def test_batched_codes_equal_the_codes_of_each_start(method, nonnegative):
    g = torch.Generator().manual_seed(1)
    draw = torch.rand if nonnegative else torch.randn
    Ws, X = draw(3, 10, 5, generator=g, dtype=F64), torch.rand(10, 25, generator=g, dtype=F64)
    batched = ksparse_codes(Ws, X, 2, method=method, nonnegative=nonnegative)
    for b in range(3):
        torch.testing.assert_close(batched[b], ksparse_nnls(Ws[b], X, 2, method=method, nonnegative=nonnegative),
                                   rtol=1e-10, atol=1e-12, msg=f"start {b}")


def test_exact_codes_in_column_blocks_equal_one_block(monkeypatch):
    import torchnmf_l1.kernels.ksparse as ksparse

    g = torch.Generator().manual_seed(2)
    W, X = torch.rand(10, 6, generator=g, dtype=F64), torch.rand(10, 50, generator=g, dtype=F64)
    whole = ksparse_nnls(W, X, 3)
    monkeypatch.setattr(ksparse, "_EXACT_BLOCK_ELEMENTS", 200)  # a few columns per block
    torch.testing.assert_close(ksparse_nnls(W, X, 3), whole, rtol=1e-12, atol=1e-14)  # batched solves round differently


def test_sign_free_greedy_is_k_sparse_and_not_better_than_exact():
    g = torch.Generator().manual_seed(4)
    W, X = torch.randn(15, 8, generator=g, dtype=F64), torch.randn(15, 30, generator=g, dtype=F64)
    greedy = ksparse_nnls(W, X, 3, method="greedy", nonnegative=False)
    exact = ksparse_nnls(W, X, 3, nonnegative=False)
    assert int((greedy != 0).sum(dim=0).max()) <= 3
    r_greedy, r_exact = (torch.linalg.vector_norm(X - W @ H, dim=0) for H in (greedy, exact))
    assert bool((r_greedy >= r_exact - 1e-10).all())
    # on its support the greedy code is the least-squares solution: the residual is orthogonal to those columns
    for j in range(30):
        S = greedy[:, j].nonzero().flatten()
        torch.testing.assert_close(W[:, S].T @ (X[:, j] - W @ greedy[:, j]), torch.zeros(len(S), dtype=F64),
                                   rtol=0, atol=1e-9)


def test_nonnegative_codes_refuse_negative_inputs_and_name_the_option():
    W = torch.rand(6, 3, dtype=F64)
    with pytest.raises(ValueError, match="X has negative entries"):
        ksparse_nnls(W, -torch.rand(6, 4, dtype=F64), 2)
    torch.testing.assert_close(ksparse_nnls(W, -torch.rand(6, 4, dtype=F64), 2, nonnegative=False).abs().sum() > 0,
                               torch.tensor(True))
    with pytest.raises(TypeError, match="nonnegative"):
        ksparse_nnls(W, torch.rand(6, 4, dtype=F64), 2, nonnegative="yes")


# -- the identifiability condition --------------------------------------------------------
def _spark_ok(vectors, tol=1e-8):
    """Every R - 1 of the columns (or all of them, when fewer) linearly independent: brute force."""
    d, p = vectors.shape
    size = min(d, p)
    return all(torch.linalg.matrix_rank(vectors[:, list(S)], atol=tol) == size
               for S in itertools.combinations(range(p), size))


def _brute_force_condition(W, H, k):
    R = W.shape[1]
    required = R * (R - 2) // (R - k) + 1
    for i in range(R):
        on_plane = [j for j in range(H.shape[1]) if H[i, j] == 0 and bool((H[:, j] != 0).any())]
        V = torch.nn.functional.normalize(H[[t for t in range(R) if t != i]][:, on_plane], dim=0)
        if not any(_spark_ok(V[:, list(S)]) for S in itertools.combinations(range(len(on_plane)), required)):
            return False
    return True


@pytest.mark.parametrize("seed", range(6))
def test_identifiability_agrees_with_exhaustive_enumeration(seed):
    # R = 4, k = 2: five points with spark 4 needed on each hyperplane, out of few candidates,
    # some of them sharing supports (dependent): met or not met depending on the seed
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(8, 4, generator=g, dtype=F64)
    H = torch.zeros(4, 14, dtype=F64)
    pairs = list(itertools.combinations(range(4), 2))
    for j in range(14):
        a, b = pairs[int(torch.randint(len(pairs), (1,), generator=g))]
        H[[a, b], j] = 0.5 + torch.rand(2, generator=g, dtype=F64)
    report = sparse_identifiability(W, H, 2)
    assert report.required == 5 and all(report.complete)
    assert report.condition_met == _brute_force_condition(W, H, 2), report


def test_identifiability_met_for_well_spread_points_and_not_for_missing_ones():
    W, H = _planted(0, R=5, k=2, n=60)
    report = sparse_identifiability(W, H)
    assert report.condition_met and report.k == 2 and report.required == 6 and report.reason == ""
    assert report.found == [6] * 5 and report.points == [int(((H[i] == 0)).sum()) for i in range(5)]
    # hyperplane 0 keeps only the points whose support is (1, 2) or (3, 4): dependent beyond 4
    keep = [j for j in range(60) if H[0, j] != 0 or set(H[:, j].nonzero().flatten().tolist()) in ({1, 2}, {3, 4})]
    supports = [frozenset(H[:, j].nonzero().flatten().tolist()) for j in keep if H[0, j] == 0]
    independent = min(2, supports.count({1, 2})) + min(2, supports.count({3, 4}))  # each pair spans 2 dimensions
    short = sparse_identifiability(W, H[:, keep], max_nodes=5000)
    assert not short.condition_met and not short.satisfied[0]
    assert short.found[0] == independent and short.complete[0]
    assert "hyperplanes [0" in short.reason


def test_identifiability_impossible_for_six_components_and_two_nonzeros():
    # 7 points per hyperplane are needed but 2-sparse points of a 5-dimensional hyperplane have spark 6 in groups of at most 6
    assert largest_spark_set(6, 2) == 6 < 6 * 4 // 4 + 1
    W, H = _planted(0, R=6, k=2, n=200)
    report = sparse_identifiability(W, H)
    assert not report.condition_met and report.largest_possible == 6 and "no data can meet it" in report.reason
    # the bound is tight: a greedy scan finds 6 on every hyperplane
    from torchnmf_l1.kernels.ksparse import _spark_subset

    for i in range(6):
        V = torch.nn.functional.normalize(H[[t for t in range(6) if t != i]][:, H[i] == 0], dim=0)
        assert _spark_subset(V, 7, 1e-8, 2000)[0] == 6


def test_identifiability_reports_rank_and_sparsity_failures():
    W, H = _planted(1, R=5, k=2, n=60)
    deficient = W.clone()
    deficient[:, 4] = W[:, 0] + W[:, 1]
    assert "rank 4" in sparse_identifiability(deficient, H).reason
    assert "more than k = 1" in sparse_identifiability(W, H, 1).reason
    dense = sparse_identifiability(W, torch.rand(5, 20, dtype=F64))
    assert not dense.condition_met and "no zero" in dense.reason
    with pytest.raises(ValueError, match="share R"):
        sparse_identifiability(W, H[:4])
    with pytest.raises(ValueError, match="zero_tol"):
        sparse_identifiability(W, H, zero_tol=-1.0)


def test_zero_tolerance_counts_tiny_entries_as_zeros():
    W, H = _planted(2, R=5, k=2, n=60)
    noisy = H + 1e-12 * torch.rand(H.shape, dtype=F64)
    assert not sparse_identifiability(W, noisy).condition_met
    assert sparse_identifiability(W, noisy, 2, zero_tol=1e-9).condition_met


# -- the model ----------------------------------------------------------------------------
@pytest.mark.parametrize("R,k,n,seeds", [(5, 2, 60, 3), (6, 3, 60, 1)])
def test_planted_factorization_is_recovered(R, k, n, seeds):
    for seed in range(seeds):
        W_true, H_true = _planted(seed, R=R, k=k, n=n)
        assert sparse_identifiability(W_true, H_true).condition_met
        X = W_true @ H_true
        model = LRSCA(R, k, n_init=5, seed=seed)
        model.fit(X)
        cols, cosines = _matched(W_true, model.W.detach())
        assert float(cosines.min()) > 1 - 1e-6, (seed, cosines)
        assert torch.equal(model.H.detach()[cols] != 0, H_true != 0), f"seed {seed}: supports differ"
        assert min(model.start_errors_) == model.start_errors_[model.best_] < 1e-5
        assert int((model.H != 0).sum(dim=0).max()) <= k and bool((model.W >= 0).all() and (model.H >= 0).all())
        assert model.identifiability().condition_met


def test_sign_free_variant_recovers_signed_factors():
    W_true, H_true = _planted(0, R=5, k=2, n=80, signed=True)
    X = W_true @ H_true
    model = LRSCA(5, 2, nonnegative=False, init="random", n_init=10, seed=0)
    model.fit(X, max_iter=1000)
    cols, cosines = _matched(W_true, model.W.detach())
    assert float(cosines.min()) > 1 - 1e-6
    assert torch.equal(model.H.detach()[cols] != 0, H_true != 0)
    assert bool((model.H < 0).any())


def test_each_start_of_the_batch_equals_its_single_fit():
    W_true, H_true = _planted(3, R=4, k=2, n=40)
    X = W_true @ H_true + 0.01 * torch.rand(30, 40, generator=torch.Generator().manual_seed(0), dtype=F64)
    starts = torch.rand(3, 30, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    batch = LRSCA(4, 2, init=starts, n_init=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch.fit(X, max_iter=40, tol=0)
        for b in range(3):
            single = LRSCA(4, 2, init=starts[b], n_init=1)
            single.fit(X, max_iter=40, tol=0)
            assert batch.start_errors_[b] == pytest.approx(single.start_errors_[0], rel=1e-9, abs=1e-12)
    assert batch.best_ == int(np.argmin(batch.start_errors_))


def test_objective_never_increases_with_exact_codes():
    W_true, H_true = _planted(4, R=5, k=2, n=60)
    X = W_true @ H_true + 0.05 * torch.rand(30, 60, generator=torch.Generator().manual_seed(0), dtype=F64)
    result = LRSCA(5, 2, n_init=4, seed=0).fit(X, max_iter=60, tol=0, check_every=1)
    history = np.array(result.objective)
    assert history.shape[1] == 4
    assert np.all(np.diff(history, axis=0) <= 1e-10 * history[:-1])


def test_transform_codes_new_columns_with_the_fitted_basis():
    W_true, H_true = _planted(5, R=5, k=2, n=60)
    model = LRSCA(5, 2, n_init=5, seed=0)
    model.fit(W_true @ H_true)
    codes = model.transform(W_true @ H_true[:, :7])
    torch.testing.assert_close(codes, model.H.detach()[:, :7], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(rank=3, k=4), ValueError, "k must be <= rank"),
    (dict(rank=3, k=0), ValueError, "k"),
    (dict(rank=3, k=2, n_init=0), ValueError, "n_init"),
    (dict(rank=3, k=2, init="spa"), ValueError, "init must be"),
    (dict(rank=3, k=2, coding="lasso"), ValueError, "coding"),
    (dict(rank=3, k=2, solver="magic"), ValueError, "magic"),
    (dict(rank=3, k=2, w_sweeps=0), ValueError, "w_sweeps"),
    (dict(rank=3, k=2, init=torch.rand(10, 4)), ValueError, "r = 3 columns"),
    (dict(rank=3, k=2, init=torch.rand(2, 10, 3), n_init=3), ValueError, "n_init = 3 starts"),
])
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        LRSCA(**kwargs)


def test_bad_data_is_refused():
    X = torch.rand(10, 8, dtype=F64)
    with pytest.raises(ValueError, match=r"rank r = 9 must be <= min\(m, n\) = 8"):
        LRSCA(9, 2).fit(X)
    with pytest.raises(ValueError, match="negative"):
        LRSCA(3, 2).fit(X - 0.5)
    with pytest.raises(ValueError, match="NaN"):
        LRSCA(3, 2).fit(torch.where(X > 0.9, torch.nan, X))
    with pytest.raises(TypeError, match="dense"):
        LRSCA(3, 2).fit(sp.random(10, 8, density=0.5, format="csr"))
    with pytest.raises(ValueError, match="init has 12 rows"):
        LRSCA(3, 2, init=torch.rand(12, 3, dtype=F64), n_init=1).fit(X)
    with pytest.raises(NotFittedError):
        LRSCA(3, 2).transform(X)
    with pytest.raises(NotFittedError):
        LRSCA(3, 2).identifiability()
    # the sign-free variant takes negative data
    model = LRSCA(3, 2, nonnegative=False, n_init=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X - 0.5, max_iter=10)
    assert math.isfinite(model.start_errors_[0])
