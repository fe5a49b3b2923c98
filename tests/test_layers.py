"""NNLSLayer / nnls_codes: forward against scipy, gradients (gradcheck, implicit = unrolled), batching, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import torch

from torchnmf_l1 import NNLSLayer, kernels
from torchnmf_l1.models.layers import nnls_codes
from torchnmf_l1.parametrize import positive

F64 = torch.float64


def _problem(B=6, m=10, r=4, seed=0, dtype=F64):
    """Well-conditioned W (identity-dominated columns) and x with a clear active set."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=dtype) * 0.3
    W[:r] += torch.eye(r, dtype=dtype)
    x = torch.rand(B, m, generator=g, dtype=dtype) - 0.3  # negative parts push some codes to 0
    return x, W


def _scipy_nnls(x, W):
    return torch.tensor(np.stack([scipy.optimize.nnls(W.numpy(), xi.numpy())[0] for xi in x]), dtype=x.dtype)


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
def test_forward_matches_scipy_nnls_per_column(backward):
    x, W = _problem()
    h = nnls_codes(x, W, backward=backward, n_iter=300)
    ref = _scipy_nnls(x, W)
    assert (ref == 0).any() and (ref > 0).any(), "the fixture should have active and free entries"
    torch.testing.assert_close(h, ref, rtol=1e-8, atol=1e-10, msg="FISTA codes differ from scipy.optimize.nnls")


def test_l1_forward_satisfies_kkt():
    x, W = _problem(seed=1)
    l1 = 0.05
    h = nnls_codes(x, W, n_iter=500, l1=l1)
    g = kernels.nnls_stationarity(h, x, W, "frobenius", l1)
    free = h > 0
    assert free.any() and (~free).any()
    torch.testing.assert_close(g[free], torch.zeros_like(g[free]), atol=1e-9, rtol=0, msg="gradient not 0 on the free set")
    assert (g[~free] >= -1e-9).all(), "KKT: the gradient must be >= 0 on the active set"
    # the penalty shrinks the codes compared with plain NNLS
    assert h.sum() < nnls_codes(x, W, n_iter=500).sum()


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_mu_recovers_planted_codes(loss):
    g = torch.Generator().manual_seed(2)
    W = torch.rand(8, 3, generator=g, dtype=F64) + 0.1
    h_true = torch.rand(4, 3, generator=g, dtype=F64) + 0.5
    h = nnls_codes(h_true @ W.T, W, solver="mu", loss=loss, n_iter=2000)
    torch.testing.assert_close(h, h_true, rtol=1e-6, atol=1e-8, msg=f"MU ({loss}) did not recover the planted codes")


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
@pytest.mark.parametrize("l1", [0.0, 0.05])
def test_gradcheck_pg(backward, l1):
    x, W = _problem(B=3, m=6, r=3, seed=3)
    h = nnls_codes(x, W, n_iter=400, l1=l1)
    assert (h == 0).any() and (h > 1e-3).any()

    def f(x, W):
        return nnls_codes(x, W, backward=backward, n_iter=400, l1=l1)

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), W.requires_grad_()), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
def test_gradcheck_mu_kl(backward):
    g = torch.Generator().manual_seed(4)
    W = torch.rand(6, 2, generator=g, dtype=F64) + 0.1
    x = (torch.rand(3, 2, generator=g, dtype=F64) + 0.5) @ W.T + 0.01 * torch.rand(3, 6, generator=g, dtype=F64)

    def f(x, W):
        return nnls_codes(x, W, backward=backward, solver="mu", loss="kl", n_iter=500)

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), W.requires_grad_()), eps=1e-7, atol=1e-6)


def test_implicit_gradients_equal_converged_unrolled_gradients():
    x, W = _problem(B=16, m=12, r=5, seed=5)
    weights = torch.randn(16, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    grads = {}
    for backward in ("unrolled", "implicit"):
        xr, Wr = x.clone().requires_grad_(), W.clone().requires_grad_()
        (nnls_codes(xr, Wr, backward=backward, n_iter=500) * weights).sum().backward()
        grads[backward] = (xr.grad, Wr.grad)
    for a, b, name in zip(grads["unrolled"], grads["implicit"], ("x", "W")):
        torch.testing.assert_close(b, a, rtol=1e-7, atol=1e-9, msg=f"implicit and unrolled gradients in {name} differ")


def test_batch_dims_and_single_vector():
    x, W = _problem(B=12, m=10, r=4, seed=6)
    layer = NNLSLayer(10, 4, dtype=F64)
    with torch.no_grad():
        layer.W.copy_(W)
    flat = layer(x)
    assert flat.shape == (12, 4)
    torch.testing.assert_close(layer(x.reshape(3, 4, 10)), flat.reshape(3, 4, 4), rtol=0, atol=1e-14)
    torch.testing.assert_close(layer(x[0]), flat[0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
def test_vmap_forward_and_per_sample_gradients(backward):
    x, W = _problem(B=5, seed=7)
    from torch.func import grad, vmap

    def codes(xi):  # validate=False: vmap cannot branch on tensor values (no checks needed for pg)
        return nnls_codes(xi, W, backward=backward, n_iter=200, validate=False)

    torch.testing.assert_close(vmap(codes)(x), nnls_codes(x, W, n_iter=200), rtol=0, atol=1e-14)
    per_sample = vmap(grad(lambda xi: codes(xi).square().sum()))(x)
    xr = x.clone().requires_grad_()
    nnls_codes(xr, W, backward=backward, n_iter=200).square().sum().backward()
    torch.testing.assert_close(per_sample, xr.grad, rtol=1e-10, atol=1e-12)


def test_training_the_dictionary_reduces_reconstruction_error():
    g = torch.Generator().manual_seed(8)
    W_true = torch.rand(12, 3, generator=g, dtype=F64)
    x = torch.rand(64, 3, generator=g, dtype=F64) @ W_true.T
    layer = NNLSLayer(12, 3, seed=1, dtype=F64, n_iter=50)
    opt = torch.optim.Adam(layer.parameters(), lr=0.02)

    def error():
        return (x - layer(x) @ layer.W.T).square().sum()

    start = float(error().detach())
    for _ in range(60):
        opt.zero_grad()
        error().backward()
        opt.step()
        layer.project_()
    assert float(error().detach()) < 0.3 * start
    assert (layer.W >= 0).all()


def test_softplus_parametrized_dictionary_gets_gradients():
    layer = positive(NNLSLayer(6, 2, seed=0, dtype=F64), "W", "softplus")
    x = torch.rand(4, 6, dtype=F64, generator=torch.Generator().manual_seed(9))
    layer(x).sum().backward()
    grad = layer.parametrizations.W.original.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.slow
def test_torch_compile_matches_eager():
    x, W = _problem(B=8, seed=10)
    layer = NNLSLayer(10, 4, dtype=F64, n_iter=100)
    with torch.no_grad():
        layer.W.copy_(W)
    # aot_eager traces with dynamo and AOTAutograd without needing a C++ compiler
    compiled = torch.compile(layer, backend="aot_eager")
    xr = x.clone().requires_grad_()
    out = compiled(xr)
    torch.testing.assert_close(out, layer(x), rtol=1e-12, atol=1e-13)
    out.sum().backward()
    xe = x.clone().requires_grad_()
    layer(xe).sum().backward()
    torch.testing.assert_close(xr.grad, xe.grad, rtol=1e-10, atol=1e-12)


def test_bad_input_errors():
    layer = NNLSLayer(5, 2, solver="mu")
    with pytest.raises(ValueError, match=r"x has negative entries \(\d+, minimum -1"):
        layer(-torch.ones(3, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 5\).*got \(3, 4\)"):
        layer(torch.ones(3, 4))
    layer.W = torch.nn.Parameter(torch.ones(4, 2))
    with pytest.raises(ValueError, match=r"W must have shape .* \(5, 2\), got \(4, 2\)"):
        layer(torch.ones(3, 5))
    with pytest.raises(ValueError, match="solver 'pg' does not handle loss 'kl'"):
        NNLSLayer(5, 2, loss="kl")
    with pytest.raises(ValueError, match="backward must be one of .* got 'adjoint'"):
        NNLSLayer(5, 2, backward="adjoint")
    with pytest.raises(ValueError, match="n_iter must be a positive integer, got 0"):
        NNLSLayer(5, 2, n_iter=0)
    with pytest.raises(TypeError, match="dtype torch.float32, got torch.float64"):
        NNLSLayer(5, 2)(torch.ones(3, 5, dtype=F64))


@pytest.mark.cuda
def test_batch_on_another_device_is_rejected_and_cuda_matches_cpu():
    layer = NNLSLayer(5, 2, dtype=F64, seed=0)
    x = torch.rand(3, 5, dtype=F64)
    with pytest.raises(ValueError, match="x is on cuda.* but W is on cpu"):
        layer(x.cuda())
    xr = x.clone().requires_grad_()
    expected = layer(xr)
    expected.square().sum().backward()
    xc = x.cuda().requires_grad_()
    out = layer.cuda()(xc)
    out.square().sum().backward()
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=1e-8, atol=1e-10)


def _saved_bytes(x, W, backward, n_iter):
    kept = {}

    def pack(t):
        kept.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage())
        return None

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda _: None):
        nnls_codes(x.clone().requires_grad_(), W.clone().requires_grad_(), backward=backward, n_iter=n_iter)
    return sum(s.nbytes() for s in kept.values())


def test_implicit_saves_the_same_memory_whatever_the_iteration_count():
    x, W = _problem(B=32, m=10, r=4, seed=11)
    implicit = [_saved_bytes(x, W, "implicit", n) for n in (10, 100)]
    unrolled = [_saved_bytes(x, W, "unrolled", n) for n in (10, 100)]
    # x, W and h only
    assert implicit[0] == implicit[1] == (x.numel() + W.numel() + 32 * 4) * x.element_size()
    assert unrolled[1] > 5 * unrolled[0]


def test_float32_matches_float64():
    x, W = _problem(B=8, seed=12)
    h64 = nnls_codes(x, W, n_iter=300)
    h32 = nnls_codes(x.float(), W.float(), n_iter=300)
    assert h32.dtype == torch.float32
    torch.testing.assert_close(h32.double(), h64, rtol=1e-4, atol=1e-5)
