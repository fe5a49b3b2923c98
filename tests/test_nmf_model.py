"""The NMF module: PyTorch plumbing, fit options, the result object, initialisations, quickstart."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF, ConvergenceWarning, NotFittedError, available_inits
from torchnmf_l1.data import prepare_data
from torchnmf_l1.init import initialize, make_generator

ROOT = Path(__file__).resolve().parents[1]


def planted(m=20, n=15, r=3, seed=0):
    rng = np.random.default_rng(seed)
    W, H = rng.random((m, r)), rng.random((r, n))
    return torch.as_tensor(W @ H), torch.as_tensor(W), torch.as_tensor(H)


def relative_error(X, model):
    return float(torch.linalg.norm(X - model().detach()) / torch.linalg.norm(X))


# ----------------------------------------------------------------------------- PyTorch plumbing
def test_parameters_forward_and_gradient(device, dtype):
    model = NMF(3, (6, 5), device=device, dtype=dtype, seed=0)
    assert isinstance(model.W, torch.nn.Parameter) and model.W.shape == (6, 3) and model.H.shape == (3, 5)
    assert model.W.dtype == dtype and model.W.device.type == device.type
    assert bool((model.W >= 0).all()) and bool((model.H >= 0).all())
    torch.testing.assert_close(model(), model.W @ model.H)
    model().sum().backward()
    torch.testing.assert_close(model.W.grad, model.H.sum(dim=1).expand(6, 3).detach())


def test_reset_parameters_is_seeded():
    a, b, c = NMF(2, (4, 3), seed=1), NMF(2, (4, 3), seed=1), NMF(2, (4, 3), seed=2)
    assert torch.equal(a.W, b.W) and torch.equal(a.H, b.H) and not torch.equal(a.W, c.W)


def test_not_fitted():
    model = NMF(2)
    assert not model.fitted
    with pytest.raises(NotFittedError, match="call fit"):
        model()
    with pytest.raises(NotFittedError, match="transform needs a fitted W"):
        model.transform(np.ones((3, 3)))


def test_extra_repr():
    text = repr(NMF(2, (4, 3), loss="beta", beta=1.5))
    assert "rank=2, shape=(4, 3), loss='beta', beta=1.5, solver='mu', init='nndsvda'" in text
    assert "loss='wl1', zero_weight=0.5" in repr(NMF(2, loss="wl1", zero_weight=0.5))
    assert "zero_weight" not in repr(NMF(2)) and "beta" not in repr(NMF(2, loss="kl"))


def test_state_dict_round_trip_into_a_fresh_model(dtype):
    X, _, _ = planted()
    model = NMF(3, seed=0, dtype=dtype)
    model.fit(X, max_iter=30, tol=0)
    fresh = NMF(3, dtype=dtype)
    assert fresh.W.shape == (0, 3)
    fresh.load_state_dict(model.state_dict())
    assert fresh.W.shape == (20, 3) and fresh.H.shape == (3, 15)
    torch.testing.assert_close(fresh(), model())
    assert isinstance(fresh.W, torch.nn.Parameter)


def test_to_dtype_then_fit():
    X, _, _ = planted()
    model = NMF(3, seed=0, dtype=torch.float64)
    model.fit(X, max_iter=10, tol=0)
    model.to(torch.float32)
    assert model.W.dtype == torch.float32 and model().dtype == torch.float32
    model.fit(X, max_iter=10, tol=0)  # the data follows the model's dtype
    assert model.W.dtype == torch.float32


# ----------------------------------------------------------------------------- fitting options
def test_transform_with_fixed_w_recovers_planted_h(device):
    X, W, H = planted()
    model = NMF(3, seed=0, device=device, dtype=torch.float64)
    model.fit(X.to(device), W=W, fix_W=True, max_iter=2000, tol=1e-14)
    torch.testing.assert_close(model.W.detach().cpu(), W)  # fixed
    torch.testing.assert_close(model.H.detach().cpu(), H, rtol=1e-5, atol=1e-6)
    rng = np.random.default_rng(1)
    H_new = torch.as_tensor(rng.random((3, 9)))
    before = model.H.detach().clone()
    H_found = model.transform((W @ H_new).to(device), max_iter=2000, tol=1e-14)
    assert H_found.shape == (3, 9)
    torch.testing.assert_close(H_found.cpu(), H_new, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.H.detach(), before)  # transform leaves the model alone


@pytest.mark.parametrize("solver", ["hals", "mu"])
def test_fix_h_keeps_h(solver):
    X, W, H = planted(seed=2)
    model = NMF(3, solver=solver, seed=0, dtype=torch.float64)
    model.fit(X, H=H, fix_H=True, max_iter=300, tol=0)
    assert torch.equal(model.H.detach(), H)
    assert relative_error(X, model) < 1e-2
    # fix_W with no W given uses the model's own W
    W_before = model.W.detach().clone()
    model.fit(X, fix_W=True, max_iter=5, tol=0)
    assert torch.equal(model.W.detach(), W_before)


def test_fit_transform_and_warm_start():
    X, _, _ = planted(seed=3)
    model = NMF(3, seed=0, dtype=torch.float64)
    H = model.fit_transform(X, max_iter=20, tol=0)
    separate = NMF(3, seed=0, dtype=torch.float64)
    separate.fit(X, max_iter=20, tol=0)
    assert torch.equal(H, separate.H.detach()), "fit_transform must return the H of the same fit"
    assert H.data_ptr() != model.H.data_ptr() and not H.requires_grad
    first = model.objective(X)
    model.fit(X, init="warm", max_iter=20, tol=0)
    assert model.objective(X) <= first
    # HALS starts by rescaling W optimally, which can only lower the objective
    assert model.result_.objective[0] <= first * (1 + 1e-12)


def test_time_limit_stops():
    X, _, _ = planted(60, 50, 5)
    model = NMF(5, seed=0, dtype=torch.float64)
    start = time.perf_counter()
    result = model.fit(X, max_iter=10**7, tol=0, time_limit=0.2, check_every=1)
    assert time.perf_counter() - start < 30
    assert result.message.startswith("reached time_limit=0.2s") and result.n_iter < 10**7
    assert result.times[-1] >= 0.2 and not result.converged


def test_callback_stops_and_sees_the_iterations():
    X, _, _ = planted()
    seen = []

    def callback(info):
        seen.append((info.iteration, info.objective))
        return info.iteration >= 6

    result = NMF(3, seed=0).fit(X, max_iter=100, tol=0, check_every=2, callbacks=[callback])
    assert [i for i, _ in seen] == [2, 4, 6]
    assert result.n_iter == 6 and result.message == "stopped by a callback at iteration 6"
    assert [o for _, o in seen] == result.objective[1:]


def test_convergence_warning_at_max_iter():
    X, _, _ = planted()
    with pytest.warns(ConvergenceWarning, match="reached max_iter=3 without meeting tol=1e-12"):
        result = NMF(3, seed=0).fit(X, max_iter=3, tol=1e-12)
    assert not result.converged


def test_converged_and_history():
    X, _, _ = planted()
    result = NMF(3, seed=0, dtype=torch.float64).fit(X, max_iter=35, tol=0, check_every=10)
    assert result.iterations == [0, 10, 20, 30, 35]
    assert len(result.objective) == len(result.times) == 5 and result.n_iter == 35
    assert all(b <= a for a, b in zip(result.objective, result.objective[1:]))
    assert all(b >= a for a, b in zip(result.times, result.times[1:]))
    result = NMF(3, seed=0, dtype=torch.float64).fit(X, max_iter=10000, tol=1e-3, check_every=5)
    assert result.converged and result.n_iter < 10000
    assert "relative decrease" in result.message or "negligible against the first objective" in result.message
    assert result.final_objective == result.objective[-1]


def test_progress_bar(capsys):
    X, _, _ = planted()
    result = NMF(3, seed=0).fit(X, max_iter=4, tol=0, progress=True, check_every=1)
    assert result.n_iter == 4
    err = capsys.readouterr().err
    assert "hals" in err and "4/4" in err and "objective=" in err, err
    NMF(3, seed=0).fit(X, max_iter=4, tol=0)
    assert capsys.readouterr().err == "", "no bar unless asked"


def test_inputs_and_sparse_kl():
    import scipy.sparse as sp

    X, _, _ = planted()
    a = NMF(3, seed=0, dtype=torch.float64)
    a.fit(X.numpy(), max_iter=10, tol=0)
    b = NMF(3, seed=0, dtype=torch.float64)
    b.fit(sp.csr_matrix(X.numpy()), max_iter=10, tol=0)
    torch.testing.assert_close(a(), b())
    # KL multiplicative updates: dense numpy and scipy.sparse make the same iterates
    dense = NMF(3, loss="kl", seed=0, dtype=torch.float64)
    dense_result = dense.fit(X.numpy(), max_iter=10, tol=0)
    sparse = NMF(3, loss="kl", seed=0, dtype=torch.float64)
    sparse_result = sparse.fit(sp.csr_matrix(X.numpy()), max_iter=10, tol=0)
    assert dense_result.solver == sparse_result.solver == "mu"
    torch.testing.assert_close(dense(), sparse(), rtol=1e-10, atol=1e-12)
    assert dense_result.objective[-1] < dense_result.objective[0]
    assert dense_result.objective[-1] == pytest.approx(sparse_result.objective[-1], rel=1e-10)


# ----------------------------------------------------------------------------- initialisations
@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
def test_initialisations_are_deterministic_for_a_seed(init, device):
    X, _, _ = planted()
    data = prepare_data(X.to(device))
    W1, H1 = initialize(data, 3, init, generator=make_generator(5, device))
    W2, H2 = initialize(data, 3, init, generator=make_generator(5, device))
    assert torch.equal(W1, W2) and torch.equal(H1, H2)
    assert W1.shape == (20, 3) and H1.shape == (3, 15) and bool((W1 >= 0).all()) and bool((H1 >= 0).all())
    assert W1.device.type == device.type
    if init in ("random", "nndsvdar"):
        W3, _ = initialize(data, 3, init, generator=make_generator(6, device))
        assert not torch.equal(W1, W3)
    assert set(available_inits()) >= {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"}


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda"])
def test_nndsvd_matches_scikit_learn(init):
    from sklearn.decomposition._nmf import _initialize_nmf

    rng = np.random.default_rng(0)
    X = rng.random((12, 9))  # small: our SVD is the exact LAPACK one
    W_ref, H_ref = _initialize_nmf(X, 4, init=init)
    W, H = initialize(prepare_data(X), 4, init, generator=make_generator(0, "cpu"))
    W, H = W.numpy(), H.numpy()
    if init == "nndsvda":
        # the same NNDSVD; the zeros are filled with sqrt(mean(X) / r), of the factors' scale,
        # where scikit-learn fills mean(X), of X's
        fill_ref, fill = X.mean(), np.sqrt(X.mean() / 4)
        assert (W_ref == fill_ref).any()
        np.testing.assert_array_equal(W_ref == fill_ref, W == fill)
        np.testing.assert_array_equal(H_ref == fill_ref, H == fill)
        W_ref, H_ref = np.where(W_ref == fill_ref, fill, W_ref), np.where(H_ref == fill_ref, fill, H_ref)
    # the vectorised NNDSVD is invariant to the signs of the singular vectors, as sklearn's
    np.testing.assert_allclose(W, W_ref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(H, H_ref, rtol=1e-8, atol=1e-10)


def test_custom_init_needs_both_factors():
    X, W, H = planted()
    with pytest.raises(ValueError, match="init='custom' needs both W and H"):
        initialize(prepare_data(X), 3, "custom", generator=make_generator(0, "cpu"), W=W)
    with pytest.raises(ValueError, match="W and H are only used with init='custom'"):
        initialize(prepare_data(X), 3, "random", generator=make_generator(0, "cpu"), W=W)
    model = NMF(3, dtype=torch.float64)
    model.fit(X, W=W, H=H, max_iter=0, tol=0)
    torch.testing.assert_close(model.W.detach(), W)  # max_iter=0: the start itself


# ----------------------------------------------------------------------------- quickstart
def test_quickstart_runs(tmp_path):
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "experiments" / "quickstart.py")
    quickstart = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quickstart)
    output = tmp_path / "quickstart.png"
    error = quickstart.main(["--output", str(output)])
    assert error < 0.02
    assert output.exists() and output.stat().st_size > 1000
