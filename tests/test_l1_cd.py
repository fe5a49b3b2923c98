"""sCD and dense CD for (weighted) L1-NMF: exact updates, sparse = dense, monotone objective, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torchnmf_l1 import NMF, kernels
from torchnmf_l1.data import prepare_data
from torchnmf_l1.init import l1_init, make_generator
from torchnmf_l1.problem import FactorState, NMFProblem, Penalties, resolve_loss
from torchnmf_l1.registry import get_solver


def _sparse_problem(m=30, n=20, density=0.4, seed=0):
    X = sp.random(m, n, density=density, random_state=seed, format="csr", dtype=np.float64)
    X.data = np.round(X.data * 10) / 10 + 0.1  # some ties
    return X


def _start(m, n, r, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, r, generator=g, dtype=dtype), torch.rand(r, n, generator=g, dtype=dtype)


def _solver(name, X, W, H, lam, update_W=True, **pen):
    data = prepare_data(X, dtype=W.dtype, device=W.device)
    problem = NMFProblem(data, resolve_loss("wl1", zero_weight=lam), Penalties(**pen), update_W=update_W)
    return get_solver(name)(problem, FactorState(W.clone(), H.clone()))


@pytest.mark.parametrize("lam", [1.0, 0.3, 0.0])
def test_sparse_and_dense_cd_make_identical_updates(lam):
    X = _sparse_problem()
    W, H = _start(*X.shape, 4)
    scd = _solver("scd", X, W, H, lam)
    dense = _solver("cd-l1", X.toarray(), W, H, lam)
    for it in range(4):
        scd.step()
        dense.step()
        torch.testing.assert_close(scd.H, dense.H, msg=f"H differs at iteration {it + 1} (lambda={lam})")
        torch.testing.assert_close(scd.W, dense.W, msg=f"W differs at iteration {it + 1} (lambda={lam})")
    # scd on the densified X (converted once to its support) makes the same updates too
    scd_dense_input = _solver("scd", X.toarray(), W, H, lam)
    scd_dense_input.step()
    fresh = _solver("scd", X, W, H, lam)
    fresh.step()
    torch.testing.assert_close(scd_dense_input.W, fresh.W)


@pytest.mark.parametrize("lam,l1", [(1.0, 0.0), (0.2, 0.0), (0.5, 0.05)])
def test_objective_non_increasing_and_matches_loss_kernel(lam, l1):
    X = _sparse_problem(40, 25, 0.3, seed=3)
    W, H = _start(*X.shape, 5, seed=2)
    s = _solver("scd", X, W, H, lam, l1_W=l1, l1_H=l1)
    Xd = torch.from_numpy(X.toarray())
    values = []
    for _ in range(8):
        values.append(float(s.objective()))
        expected = kernels.weighted_l1_loss(Xd, s.W, s.H, lam) + l1 * (s.W.sum() + s.H.sum())
        torch.testing.assert_close(s.objective(), expected, msg="objective != weighted_l1_loss on dense X")
        s.step()
    values.append(float(s.objective()))
    diffs = np.diff(values)
    assert np.all(diffs <= 1e-10 * values[0]), f"objective increased: {values}"
    assert values[-1] < values[0]
    assert bool((s.W >= 0).all() and (s.H >= 0).all())


def _brute_force_sweep(X, W, H, lam):
    """Coordinate descent on H by brute force: each H[p, q] minimises the full objective."""
    H = H.clone()
    Xd = torch.from_numpy(X)
    r, n = H.shape
    for p in range(r):
        for q in range(n):
            R = Xd[:, q] - W @ H[:, q] + W[:, p] * H[p, q]
            candidates = sorted({0.0} | {float(v) for v in (R / W[:, p]) if v >= 0})
            objs = []
            for c in candidates:
                H[p, q] = c
                objs.append(float(kernels.weighted_l1_loss(Xd, W, H, lam)))
            best = min(objs)
            H[p, q] = next(c for c, o in zip(candidates, objs) if o <= best + 1e-12 * (1 + best))
    return H


@pytest.mark.parametrize("lam", [1.0, 0.25])
def test_each_row_update_is_exactly_optimal(lam):
    X = _sparse_problem(7, 6, 0.5, seed=5)
    W, H = _start(7, 6, 3, seed=4)
    s = _solver("scd", X, W, H, lam, update_W=False)
    s.step()
    ref = _brute_force_sweep(X.toarray(), W, H, lam)
    torch.testing.assert_close(s.H, ref, msg="sCD row update is not the exact coordinate minimiser")


def test_public_names_dense_sparse_torch_sparse():
    X = _sparse_problem(30, 24, 0.5, seed=7)
    fits = {}
    for name, data in {"scipy": X, "dense": X.toarray(), "torch_sparse": torch.from_numpy(X.toarray()).to_sparse()}.items():
        model = NMF(3, loss="wl1", zero_weight=0.5, solver="scd", seed=0, dtype=torch.float64)
        result = model.fit(data, max_iter=5, tol=0)
        fits[name] = model.W.detach().clone()
        ratio = result.objective[-1] / X.sum()
        assert result.extra["objective_over_sum_x"] == pytest.approx(ratio, rel=1e-10)
    torch.testing.assert_close(fits["scipy"], fits["dense"])
    torch.testing.assert_close(fits["scipy"], fits["torch_sparse"])
    assert NMF(3, loss="l1").solver == "scd" and NMF(3, loss="l1").init == "l1-init"
    assert NMF(3, loss="l1", init="nndsvda").init == "nndsvda"


def test_l1_init_scaling_and_balance():
    X = _sparse_problem(20, 15, 0.5, seed=9)
    data = prepare_data(X)
    W, H = l1_init(data, 4, generator=make_generator(0, "cpu"), hals_iter=0)
    Xd = torch.from_numpy(X.toarray())
    # least-squares scaled: no multiple of WH fits X better in the Frobenius norm
    WH = W @ H
    torch.testing.assert_close((Xd * WH).sum(), (WH * WH).sum(), msg="<X, WH> != ||WH||^2")
    torch.testing.assert_close(W.sum(0), H.sum(1), msg="column sums of W != row sums of H")
    # the same uniform draws as the generator gives, up to the scaling and balancing
    g = make_generator(0, "cpu")
    W_raw, H_raw = torch.rand(20, 4, generator=g, dtype=W.dtype), torch.rand(4, 15, generator=g, dtype=W.dtype)
    torch.testing.assert_close(W / W.sum(0), W_raw / W_raw.sum(0))
    W5, H5 = l1_init(data, 4, generator=make_generator(0, "cpu"), hals_iter=5)
    assert float(torch.linalg.norm(Xd - W5 @ H5)) < float(torch.linalg.norm(Xd - W @ H)), "HALS steps did not help"


def test_bad_input():
    X = _sparse_problem(10, 8)
    for lam, exc, msg in [(-0.1, ValueError, "option 'zero_weight' must be None or a number >= 0, got -0.1"),
                          (float("nan"), ValueError, "zero_weight' must be None or a number >= 0, got nan"),
                          (float("inf"), ValueError, "got inf"), ("a", TypeError, "option 'zero_weight' must be None or a number")]:
        with pytest.raises(exc, match=msg):
            NMF(2, loss="wl1", zero_weight=lam, solver="scd")
    negative = X.toarray()
    negative[0, 0] = -1.0
    with pytest.raises(ValueError, match="negative entries"):
        NMF(2, loss="l1", solver="scd").fit(negative, max_iter=1)
    with pytest.raises(ValueError, match="L1 penalties only"):
        NMF(2, loss="l1", solver="scd", l2_reg_H=0.1).fit(X, max_iter=1)
    with pytest.raises(ValueError, match="does not handle sparse X"):
        NMF(2, loss="l1", solver="cd-l1").fit(X, max_iter=1)
    with pytest.raises(ValueError, match="does not handle loss"):
        NMF(2, loss="frobenius", solver="scd")
    model = NMF(2, loss="l1", seed=0)
    model.fit(X, max_iter=2, tol=0)
    W = model.W.detach().clone()
    with pytest.raises(ValueError, match="NaN or infinite"):
        bad = X.toarray()
        bad[1, 1] = np.inf  # NaN would be a missing entry (tests/test_missing.py)
        model.fit(bad, max_iter=1)
    torch.testing.assert_close(model.W.detach(), W, msg="a failed fit changed the factors")


def test_device_and_float32(device):
    X = _sparse_problem(25, 20, 0.4, seed=11)
    W, H = _start(25, 20, 3, seed=12)
    ref = _solver("scd", X, W, H, 0.5)
    ref.step()
    s = _solver("scd", X, W.to(device), H.to(device), 0.5)
    s.step()
    assert s.W.device.type == device.type
    torch.testing.assert_close(s.W.cpu(), ref.W)
    s32 = _solver("scd", X, W.float().to(device), H.float().to(device), 0.5)
    s32.step()
    assert s32.W.dtype == torch.float32
    torch.testing.assert_close(s32.objective().double().cpu(), ref.objective(), rtol=1e-4, atol=1e-6)


def test_scd_never_forms_a_dense_m_by_n_tensor():
    # a dense 100000 x 50000 float64 tensor would take 40 GB: sCD must work on the support only
    m, n = 100_000, 50_000
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, m, 3000), rng.integers(0, n, 3000)
    X = sp.csr_matrix((rng.random(3000) + 0.1, (rows, cols)), shape=(m, n))
    model = NMF(2, loss="wl1", zero_weight=0.1, solver="scd", seed=0, dtype=torch.float64)
    result = model.fit(X, max_iter=3, tol=0)
    assert result.objective[-1] <= result.objective[1] + 1e-9 * abs(result.objective[1])
