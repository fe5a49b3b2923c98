"""Replicates: R seeded starts of one X fitted as one batched problem (NMF(n_replicates=R))."""

import warnings

import pytest
import scipy.sparse as sp
import torch

from torchnmf_l1 import NMF

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def data(seed=0, m=30, n=25, r=3, zeros=0.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(m, r, generator=g, dtype=torch.float64) @ torch.rand(r, n, generator=g, dtype=torch.float64)
    if zeros:
        X = torch.where(torch.rand(m, n, generator=g) < zeros, 0.0, X)
    return X


@pytest.mark.parametrize("options,sparse", [
    (dict(solver="hals"), False),
    (dict(solver="hals"), True),
    (dict(loss="kl", solver="mu"), False),
    (dict(loss="beta", beta=1.5, solver="mu"), True),
    (dict(loss="l1", solver="scd"), False),
    (dict(loss="l1", solver="scd"), True),
    (dict(loss="wl1", zero_weight=0.3, solver="scd"), True),
])
def test_replicate_k_equals_the_single_fit_with_seed_plus_k(options, sparse):
    X = data(zeros=0.3 if options.get("solver") == "scd" else 0.0)
    X = X + (0.0 if options.get("solver") == "scd" else 0.01)
    given = sp.csr_matrix(X.numpy()) if sparse else X
    R, seed = 4, 11
    model = NMF(3, seed=seed, n_replicates=R, **options)
    model.fit(given, max_iter=12, tol=0, warn=False)
    assert tuple(model.W.shape) == (R, 30, 3) and tuple(model.H.shape) == (R, 3, 25)
    assert model.replicate_seeds_ == [seed + k for k in range(R)]
    for k in range(R):
        single = NMF(3, seed=seed + k, init=model.init, **options)
        single.fit(given, max_iter=12, tol=0, warn=False)
        torch.testing.assert_close(model.W[k], single.W, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(model.H[k], single.H, rtol=1e-6, atol=1e-9)
        assert model.replicate_objectives_[k] == pytest.approx(single.result_.final_objective, rel=1e-6)


def test_replicates_differ_and_keep_best_keeps_the_lowest_objective():
    X = data(seed=1) + 0.05 * torch.rand(30, 25, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    everything = NMF(3, seed=0, n_replicates=5)
    everything.fit(X, max_iter=30, tol=0, warn=False)
    objectives = everything.replicate_objectives_
    assert len(set(round(v, 12) for v in objectives)) > 1, "the replicates should start differently"
    best = NMF(3, seed=0, n_replicates=5)
    best.fit(X, max_iter=30, tol=0, warn=False, keep="best")
    assert best.W.dim() == 2 and best.best_ == min(range(5), key=objectives.__getitem__)
    torch.testing.assert_close(best.W, everything.W[best.best_])
    assert best.objective(X) == pytest.approx(min(objectives), rel=1e-9)


def test_replicates_with_a_mask_take_the_masked_single_fits():
    X = data(seed=3) + 0.01
    mask = torch.rand(X.shape, generator=torch.Generator().manual_seed(4)) < 0.7
    model = NMF(3, seed=5, n_replicates=3, solver="hals")
    model.fit(X, mask=mask, max_iter=10, tol=0, warn=False)
    for k in range(3):
        single = NMF(3, seed=5 + k, init="random", solver="hals")
        single.fit(X, mask=mask, max_iter=10, tol=0, warn=False)
        torch.testing.assert_close(model.W[k], single.W, rtol=1e-6, atol=1e-9)


def test_replicates_refuse_what_they_cannot_do():
    X = data()
    with pytest.raises(ValueError, match="same start"):
        NMF(3, n_replicates=3, init="nndsvda")
    assert NMF(3, n_replicates=3).init == "random"  # the solver's NNDSVDa default would repeat one start
    with pytest.raises(ValueError, match="n_replicates"):
        NMF(3, n_replicates=0)
    with pytest.raises(ValueError, match="keep='best' chooses among replicates"):
        NMF(3).fit(X, keep="best")
    with pytest.raises(ValueError, match="keep must be 'all' or 'best'"):
        NMF(3, n_replicates=2).fit(X, keep="first")
    with pytest.raises(ValueError, match="got a batch of 2 matrices"):
        NMF(3, n_replicates=2).fit(torch.stack([X, X]))
