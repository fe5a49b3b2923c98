"""Nonnegativity parametrizations, projection, train_autograd, and fixed-point solvers after autograd."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize as P

from torchnmf_l1 import NMF
from torchnmf_l1.parametrize import (
    CONSTRAINTS,
    Exp,
    NotNonnegativeError,
    ProjectedOptimizer,
    Softplus,
    Square,
    positive,
    project_,
    train_autograd,
)

F64 = torch.float64


def _data(m=20, n=15, r=3, seed=0, zeros=False):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(m, r, generator=g, dtype=F64) @ torch.rand(r, n, generator=g, dtype=F64)
    if zeros:
        X[torch.rand(m, n, generator=g, dtype=F64) < 0.2] = 0.0
    return X


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_right_inverse_inverts_forward(name):
    c = CONSTRAINTS[name]()
    Y = torch.rand(5, 4, dtype=F64, generator=torch.Generator().manual_seed(1)) + 0.01
    torch.testing.assert_close(c(c.right_inverse(Y)), Y, rtol=1e-12, atol=1e-14)
    V = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(2)) * 3
    assert (c(V) >= 0).all() and c.in_manifold(c(V))


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_negative_target_raises_typed_error(name):
    Y = torch.tensor([[0.5, -0.25]], dtype=F64)
    with pytest.raises(NotNonnegativeError, match="minimum is -0.25"):
        CONSTRAINTS[name]().right_inverse(Y)
    assert issubclass(NotNonnegativeError, ValueError)
    model = NMF(1, shape=(1, 2), dtype=F64)
    with torch.no_grad():
        model.H.copy_(Y)
    with pytest.raises(NotNonnegativeError, match="minimum is -0.25"):
        positive(model, "H", name)


@pytest.mark.parametrize("constraint", [Softplus(beta=2.0), Square(), Exp()])
def test_gradcheck_parametrizations(constraint):
    V = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(3), requires_grad=True)
    assert torch.autograd.gradcheck(constraint, (V,))


def test_bad_constraint_and_options():
    with pytest.raises(ValueError, match="constraint must be one of .* got 'relu'"):
        positive(NMF(2, shape=(4, 4)), "W", "relu")
    with pytest.raises(ValueError, match="has no tensor named 'K'"):
        positive(NMF(2, shape=(4, 4)), "K")
    with pytest.raises(ValueError, match="beta must be a finite number > 0, got -1"):
        Softplus(beta=-1)


@pytest.mark.parametrize(
    "loss, kwargs, zeros",
    [("frobenius", {}, False), ("kl", {}, True), ("beta", {"beta": 1.5}, True), ("l1", {}, True),
     ("wl1", {"zero_weight": 0.3}, True), ("is", {}, False)],
)
def test_train_autograd_decreases_every_kernel_loss_and_projects(loss, kwargs, zeros):
    X = _data(zeros=zeros)
    model = NMF(3, shape=X.shape, dtype=F64, seed=1)
    result = train_autograd(model, X, loss=loss, steps=60, lr=0.02, **kwargs)
    assert result.losses[-1] < 0.8 * result.losses[0], result.losses[::10]
    assert (model.W >= 0).all() and (model.H >= 0).all()
    assert result.steps == 60


def test_train_autograd_user_callable_loss():
    X = _data()
    model = NMF(3, shape=X.shape, dtype=F64, seed=1)
    calls = []

    def huber(X, W, H):
        calls.append(1)
        return torch.nn.functional.huber_loss(W @ H, X, reduction="sum", delta=0.1)

    result = train_autograd(model, X, loss=huber, steps=30, lr=0.02)
    assert len(calls) == 31 and result.losses[-1] < 0.8 * result.losses[0]


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_parametrized_training_keeps_factors_nonnegative(name):
    X = _data(seed=2)
    model = NMF(3, shape=X.shape, dtype=F64, seed=3)
    with torch.no_grad():  # Square cannot leave exact zeros; start well inside the orthant
        model.W.add_(0.1)
        model.H.add_(0.1)
    positive(positive(model, "W", name), "H", name)
    result = train_autograd(model, X, steps=80, lr=0.02)
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert (model.W >= 0).all() and (model.H >= 0).all()
    # the raw tensor did go negative for softplus/exp (it is unconstrained), not the factor
    assert P.is_parametrized(model, "W")
    if name in ("softplus", "exp"):
        assert (model.parametrizations.W.original < 0).any(), "training stayed inside the orthant: the test lost its point"


def test_hals_after_adam_steps_keeps_decreasing():
    X = _data(seed=4)
    model = NMF(3, shape=X.shape, dtype=F64, seed=5, solver="hals")
    train_autograd(model, X, steps=40, lr=0.02)
    before = model.objective(X)
    W_adam = model.W.detach().clone()
    result = model.fit(X, init="warm", max_iter=100, tol=0)
    objective = torch.tensor(result.objective)
    assert objective[-1] < 0.01 * before
    assert (objective[1:] <= objective[:-1] * (1 + 1e-12)).all(), "HALS objective must not increase"
    assert not torch.equal(model.W, W_adam) and (model.W >= 0).all()


def test_fit_writes_through_parametrization_and_after_removal():
    X = _data(seed=6)
    model = positive(NMF(3, shape=X.shape, dtype=F64, seed=7, solver="hals"), "W", "softplus")
    train_autograd(model, X, steps=20, lr=0.02)
    before = model.objective(X)
    model.fit(X, init="warm", max_iter=50, tol=0)
    after = model.objective(X)
    assert after < 0.1 * before, "the fit result must reach the parametrized W"
    P.remove_parametrizations(model, "W", leave_parametrized=True)
    assert isinstance(model.W, torch.nn.Parameter)
    model.fit(X, init="warm", max_iter=50, tol=0)
    assert model.objective(X) <= after * (1 + 1e-9)


def test_project_and_projected_optimizer_only_touch_factors():
    net = torch.nn.Sequential(NMF(2, shape=(4, 3), dtype=F64), torch.nn.Linear(3, 2, dtype=F64))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(-1.0)
    project_(net)
    assert (net[0].W == 0).all() and (net[0].H == 0).all() and (net[1].weight == -1).all()
    model = NMF(2, shape=(4, 3), dtype=F64, seed=0)
    opt = ProjectedOptimizer(torch.optim.SGD(model.parameters(), lr=10.0), [model.W, model.H])
    (model() * 100).sum().backward()  # a huge step that would make every entry negative
    opt.step()
    assert (model.W >= 0).all() and (model.H >= 0).all() and (model.W == 0).any()


def test_train_autograd_bad_input_keeps_factors():
    model = NMF(2, shape=(4, 3), dtype=F64, seed=0)
    W0 = model.W.detach().clone()
    with pytest.raises(ValueError, match="negative"):
        train_autograd(model, -torch.ones(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"do not factor X of shape \(5, 3\)"):
        train_autograd(model, torch.ones(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train_autograd(model, torch.ones(4, 3, dtype=F64), steps=0)
    with pytest.raises(TypeError, match="model must have tensors W and H"):
        train_autograd(torch.nn.Linear(2, 2), torch.ones(4, 3))
    torch.testing.assert_close(model.W, W0)


@pytest.mark.cuda
def test_train_autograd_rejects_data_on_another_device():
    model = NMF(2, shape=(4, 3), dtype=F64, seed=0)
    with pytest.raises(ValueError, match="X is on cuda.* but the model is on cpu"):
        train_autograd(model, torch.ones(4, 3, dtype=F64, device="cuda"))
