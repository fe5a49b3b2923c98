"""Data validation and conversion, loss resolution, and every bad input of the issue."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torchnmf_l1 import NMF
from torchnmf_l1.data import check_factor, prepare_data
from torchnmf_l1.problem import Penalties, resolve_loss


def sample(m=6, n=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, n)) * (rng.random((m, n)) < 0.5)
    X[0, 0] = 1.0
    return X


@pytest.mark.parametrize(
    "make",
    [
        lambda X: X,
        lambda X: X.astype(np.float32),
        lambda X: (X * 10).astype(np.int64),
        lambda X: sp.csr_matrix(X),
        lambda X: sp.coo_matrix(X),
        lambda X: sp.csc_matrix(X),
        lambda X: torch.as_tensor(X),
        lambda X: torch.as_tensor(X).to_sparse_coo(),
        lambda X: torch.as_tensor(X).to_sparse_csr(),
        lambda X: torch.as_tensor(X).to_sparse_csc(),
    ],
    ids=["numpy", "numpy32", "numpy-int", "scipy-csr", "scipy-coo", "scipy-csc", "torch", "torch-coo", "torch-csr", "torch-csc"],
)
def test_prepare_data_accepts_every_container(make, device):
    X = sample()
    source = make(X)
    data = prepare_data(source, device=device, dtype=torch.float64)
    expected = np.floor(X * 10) if getattr(source, "dtype", None) == np.int64 else X
    assert data.shape == X.shape and data.dtype == torch.float64 and data.device.type == device.type
    sparse_input = sp.issparse(source) or (isinstance(source, torch.Tensor) and source.layout != torch.strided)
    assert data.sparse == sparse_input
    dense = data.X.to_dense() if data.sparse else data.X  # test-only densification of a 6 x 5 matrix
    np.testing.assert_allclose(dense.cpu().numpy(), expected, rtol=1e-6)
    if data.sparse:
        assert data.X.layout == torch.sparse_csr
        assert data.nnz == np.count_nonzero(X)
        np.testing.assert_allclose(data.X_t.to_dense().cpu().numpy(), expected.T, rtol=1e-6)
        np.testing.assert_array_equal(data.values[data.perm_t].cpu().numpy(), data.X_t.values().cpu().numpy())
        T = data.T
        assert T.shape == X.shape[::-1]
        np.testing.assert_allclose(T.X.to_dense().cpu().numpy(), expected.T, rtol=1e-6)
        rows, cols, values = T.support[:3]
        np.testing.assert_allclose(values.cpu().numpy(), expected.T[rows.cpu().numpy(), cols.cpu().numpy()])
        np.testing.assert_array_equal(T.values[T.perm_t].cpu().numpy(), T.X_t.values().cpu().numpy())


def test_default_dtypes():
    X = sample()
    assert prepare_data(X).dtype == torch.float64
    assert prepare_data(X.astype(np.float32)).dtype == torch.float32
    assert prepare_data(torch.as_tensor(X, dtype=torch.float16)).dtype == torch.float32
    assert prepare_data((X * 3).astype(np.int32)).dtype == torch.get_default_dtype()


def test_stored_zeros_are_dropped_and_input_is_not_mutated():
    X = sp.csr_matrix(np.array([[1.0, 0.0], [2.0, 3.0]]))
    X.data[1] = 0.0  # an explicitly stored zero
    before = X.copy()
    data = prepare_data(X)
    assert data.nnz == 2
    assert (X != before).nnz == 0 and X.nnz == 3


BAD_DATA = [
    (np.array([[1.0, -2.0], [0.5, 1.0]]), ValueError, r"negative entries \(minimum -2"),
    (np.array([[1.0, np.nan], [0.5, 1.0]]), ValueError, r"NaN or infinite values \(1 entries\)"),
    (np.array([[1.0, np.inf], [0.5, 1.0]]), ValueError, "NaN or infinite"),
    (sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 1.0]])), ValueError, "negative entries"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]).to_sparse_coo(), ValueError, "NaN or infinite"),
    (np.ones(4), ValueError, r"must be 2-D \(m x n\), got a 1-D input of shape \(4,\)"),
    (np.ones((2, 3, 4)), ValueError, r"got a 3-D input of shape \(2, 3, 4\)"),
    (np.ones((0, 3)), ValueError, r"is empty: shape \(0, 3\)"),
    (torch.ones(3, 0), ValueError, r"is empty: shape \(3, 0\)"),
    (np.ones((2, 2), dtype=np.complex128), TypeError, r"complex dtype \(complex128\)"),
    (torch.ones(2, 2, dtype=torch.complex64), TypeError, r"complex dtype \(torch.complex64\)"),
    (np.ones((2, 2), dtype=bool), TypeError, r"boolean dtype \(bool\)"),
    (torch.ones(2, 2, dtype=torch.bool), TypeError, r"boolean dtype \(torch.bool\)"),
    (np.array([["a", "b"]]), TypeError, "unsupported dtype <U1"),
    ([[1, 2], [3, 4]], TypeError, "got builtins.list"),
    ("text", TypeError, "must be a numpy array, a scipy.sparse matrix or a torch tensor, got builtins.str"),
]


@pytest.mark.parametrize("X,error,match", BAD_DATA)
def test_bad_data(X, error, match):
    with pytest.raises(error, match=match):
        prepare_data(X)


def test_zeros_rejected_when_not_allowed():
    with pytest.raises(ValueError, match="contains zeros"):
        prepare_data(np.array([[1.0, 0.0], [1.0, 1.0]]), allow_zeros=False)
    with pytest.raises(ValueError, match="contains zeros"):
        prepare_data(sp.csr_matrix(np.array([[1.0, 0.0], [1.0, 1.0]])), allow_zeros=False)
    assert prepare_data(np.ones((2, 2)), allow_zeros=False).shape == (2, 2)


def test_bad_dtype_argument():
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64, got torch.int32"):
        prepare_data(np.ones((2, 2)), dtype=torch.int32)


def test_check_factor():
    F = check_factor(np.ones((3, 2)), "W", (3, 2), device="cpu", dtype=torch.float64)
    assert F.shape == (3, 2) and F.dtype == torch.float64
    with pytest.raises(ValueError, match=r"W must have shape \(3, 2\), got \(2, 3\)"):
        check_factor(np.ones((2, 3)), "W", (3, 2), device="cpu", dtype=torch.float64)
    with pytest.raises(ValueError, match="H has negative entries"):
        check_factor(-np.ones((2, 3)), "H", (2, 3), device="cpu", dtype=torch.float64)
    with pytest.raises(TypeError, match="W must be a dense tensor"):
        check_factor(torch.ones(3, 2).to_sparse(), "W", (3, 2), device="cpu", dtype=torch.float64)
    source = torch.ones(3, 2, dtype=torch.float64)
    copy = check_factor(source, "W", (3, 2), device="cpu", dtype=torch.float64)
    copy.mul_(2)
    assert torch.all(source == 1)


# ----------------------------------------------------------------------------- losses
@pytest.mark.parametrize(
    "loss,kwargs,name,beta",
    [
        ("frobenius", {}, "frobenius", 2.0),
        ("fro", {}, "frobenius", 2.0),
        ("KL", {}, "kl", 1.0),
        ("itakura-saito", {}, "is", 0.0),
        ("beta", {"beta": 2}, "frobenius", 2.0),
        ("beta", {"beta": 1.0}, "kl", 1.0),
        ("beta", {"beta": 0}, "is", 0.0),
        ("beta", {"beta": 1.5}, "beta", 1.5),
        ("kl", {"beta": 1}, "kl", 1.0),
        ("wl1", {"zero_weight": 1.0}, "l1", None),
        ("wl1", {"zero_weight": 0.3}, "wl1", None),
        ("l1", {}, "l1", None),
    ],
)
def test_resolve_loss(loss, kwargs, name, beta):
    resolved = resolve_loss(loss, **kwargs)
    assert resolved.name == name and resolved.beta == beta


@pytest.mark.parametrize(
    "loss,kwargs,error,match",
    [
        ("hinge", {}, ValueError, "unknown loss 'hinge'"),
        (2, {}, TypeError, "loss must be a string"),
        ("beta", {}, ValueError, "loss 'beta' needs beta="),
        ("beta", {"beta": float("nan")}, ValueError, "beta must be finite, got nan"),
        ("beta", {"beta": "1"}, TypeError, "beta must be a real number, got '1'"),
        ("kl", {"beta": 2}, ValueError, "loss 'kl' has beta=1, got beta=2"),
        ("l1", {"beta": 1}, ValueError, "beta is only used by beta-divergence losses"),
        ("wl1", {"zero_weight": -1}, ValueError, r"zero_weight must be >= 0, got -1"),
        ("frobenius", {"zero_weight": 0.5}, ValueError, "zero_weight is only used by the 'wl1' loss"),
    ],
)
def test_resolve_loss_errors(loss, kwargs, error, match):
    with pytest.raises(error, match=match):
        resolve_loss(loss, **kwargs)


def test_penalties_validation_and_value():
    with pytest.raises(ValueError, match=r"l1_reg_W must be >= 0, got -1.0"):
        Penalties(l1_W=-1)
    with pytest.raises(TypeError, match="l2_reg_H must be a real number"):
        Penalties(l2_H="x")
    W, H = torch.full((2, 2), 2.0), torch.full((2, 3), 3.0)
    p = Penalties(0.5, 0.25, 1.0, 2.0)
    expected = 0.5 * 8 + 0.5 * 0.25 * 16 + 1.0 * 18 + 0.5 * 2.0 * 54
    assert float(p.value(W, H)) == pytest.approx(expected)
    assert p.transposed == Penalties(1.0, 2.0, 0.5, 0.25)


# ----------------------------------------------------------------------------- bad input at the model
def fitted_model():
    rng = np.random.default_rng(0)
    X = rng.random((8, 3)) @ rng.random((3, 7))
    model = NMF(3, seed=0, dtype=torch.float64)
    model.fit(X, max_iter=20, tol=0)
    return model, X


@pytest.mark.parametrize(
    "X,kwargs,error,match",
    [
        (np.array([[1.0, -2.0], [0.5, 1.0]]), {}, ValueError, "negative entries"),
        (np.array([[1.0, np.inf], [0.5, 1.0]]), {}, ValueError, "NaN or infinite"),  # NaN: missing (test_missing.py)
        (np.ones(8), {}, ValueError, "must be 2-D"),
        (np.ones((8, 7, 2, 2)), {}, ValueError, "4-D input"),
        (np.ones((0, 7)), {}, ValueError, "is empty"),
        (np.ones((8, 7), dtype=np.complex64), {}, TypeError, "complex dtype"),
        (np.ones((8, 7), dtype=bool), {}, TypeError, "boolean dtype"),
        (np.ones((8, 2)), {}, ValueError, r"rank must be <= min\(m, n\) = 2 for X of shape \(8, 2\), got 3"),
        (np.ones((8, 7)), {"W": np.ones((7, 3))}, ValueError, r"W must have shape \(8, 3\), got \(7, 3\)"),
        (np.ones((8, 7)), {"H": np.ones((3, 8)), "W": np.ones((8, 3))}, ValueError, r"H must have shape \(3, 7\), got \(3, 8\)"),
        (np.ones((8, 7)), {"init": "magic"}, ValueError, "unknown init 'magic'"),
        (np.ones((8, 7)), {"max_iter": -1}, ValueError, "max_iter must be an integer >= 0, got -1"),
        (np.ones((8, 7)), {"tol": -1.0}, ValueError, "tol must be a finite number >= 0, got -1.0"),
        (np.ones((8, 7)), {"fix_W": True, "fix_H": True}, ValueError, "fix_W and fix_H cannot both be True"),
    ],
)
def test_bad_fit_input_keeps_fitted_factors(X, kwargs, error, match):
    model, _ = fitted_model()
    W, H = model.W.detach().clone(), model.H.detach().clone()
    with pytest.raises(error, match=match):
        model.fit(X, **kwargs)
    assert torch.equal(model.W.detach(), W) and torch.equal(model.H.detach(), H)


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((0,), {}, ValueError, "NMF: option 'rank' must be an integer >= 1, got 0"),
        ((2.5,), {}, TypeError, "NMF: option 'rank' must be an integer >= 1, got 2.5"),
        ((3,), {"solver": "newton"}, ValueError, r"option 'solver' must be None or a registered nmf solver: one of .*'hals'.*got 'newton'"),
        ((3,), {"solver": 7}, TypeError, "option 'solver' must be None or a registered nmf solver.*got 7"),
        ((3,), {"loss": "kl", "solver": "hals"}, ValueError, r"solver 'hals' does not handle loss 'kl'; it handles \['frobenius'\]"),
        ((3,), {"loss": "beta", "beta": 1.5, "solver": "hals"}, ValueError, "solver 'hals' does not handle loss 'beta'"),
        ((3,), {"init": "magic"}, ValueError, r"option 'init' must be None or a registered nmf initialisation: one of .*got 'magic'"),
        ((3,), {"solver": "hals", "beta1": 0.3}, TypeError, r"unexpected option\(s\) \['beta1'\]"),
        ((3,), {"dtype": torch.float16}, TypeError, "dtype must be torch.float32 or torch.float64"),
        ((3,), {"seed": -2}, ValueError, "option 'seed' must be None or an integer >= 0, got -2"),
        ((3,), {"l1_reg_H": -0.1}, ValueError, "option 'l1_reg_H' must be a number >= 0, got -0.1"),
        ((3,), {"device": "cuda:7"}, ValueError, "CUDA is not available on this machine|this machine has"),
        ((3, (2, 5)), {}, ValueError, r"rank must be <= min\(m, n\) = 2, got 3"),
        ((3, (2, 0)), {}, ValueError, "shape must be two positive integers"),
    ],
)
def test_bad_model_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        NMF(*args, **kwargs)


def test_is_loss_rejects_zeros_in_x():
    model = NMF(2, loss="is", seed=0, dtype=torch.float64)
    X = np.ones((5, 4))
    model.fit(X + np.arange(4), max_iter=5, tol=0)
    W = model.W.detach().clone()
    X[1, 2] = 0.0
    with pytest.raises(ValueError, match="X contains zeros, which this loss does not allow"):
        model.fit(X)
    with pytest.raises(ValueError, match="contains zeros"):
        model.fit(sp.csr_matrix(X))
    assert torch.equal(model.W.detach(), W)


@pytest.mark.cuda
def test_x_on_another_device_than_the_model():
    model = NMF(2, device="cuda", dtype=torch.float64)
    with pytest.raises(ValueError, match=r"X is on cpu but the model is on cuda"):
        model.fit(torch.ones(4, 3, dtype=torch.float64))
    model = NMF(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"X is on cuda:0 but the model is on cpu"):
        model.fit(torch.ones(4, 3, dtype=torch.float64, device="cuda"))
