"""The per-sample NMF layer (Hamburger-style): forward = MU per sample, one-step and unrolled gradients."""

import pytest
import torch

from torchnmf_l1 import NMF, NMFLayer
from torchnmf_l1 import kernels

F64 = torch.float64


def samples(B=3, m=6, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, m, 2, generator=g, dtype=F64) @ torch.rand(B, 2, n, generator=g, dtype=F64) + 0.05


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_forward_is_the_mu_factorization_of_each_sample(loss):
    x = samples()
    layer = NMFLayer(6, 3, n_iter=4, loss=loss, backward="unrolled", seed=0, dtype=F64)
    W, H = layer.factorize(x)
    beta = 2.0 if loss == "frobenius" else 1.0
    D = layer.dictionary.detach()
    for b in range(x.shape[0]):  # a literal loop: H then W, from W = D, H = softmax(D^T x)
        Wb, Hb = D.clone(), torch.softmax(D.T @ x[b], dim=0)
        for _ in range(4):
            num, den = kernels.beta_mu_ratio_terms(x[b], Wb, Hb, beta)
            Hb = Hb * num / den
            num, den = kernels.beta_mu_ratio_terms(x[b].T, Hb.T, Wb.T, beta)
            Wb = (Wb.T * num / den).T
        torch.testing.assert_close(W[b].detach(), Wb, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(H[b].detach(), Hb, rtol=1e-10, atol=1e-12)
    # MU never increases the objective: more steps, a better fit
    def objective(k):
        W, H = NMFLayer(6, 3, n_iter=k, loss=loss, seed=0, dtype=F64).factorize(x)
        return float(kernels.beta_divergence(x, W.detach(), H.detach(), beta).sum())

    values = [objective(k) for k in (1, 3, 9)]
    assert values[0] >= values[1] >= values[2]


def test_unrolled_gradient_is_exact():
    x = samples(B=2, m=4, n=3).requires_grad_(True)
    layer = NMFLayer(4, 2, n_iter=2, backward="unrolled", seed=1, dtype=F64)
    assert torch.autograd.gradcheck(lambda x, D: _with_dictionary(layer, D)(x), (x, layer.dictionary.detach().clone()
                                                                                     .requires_grad_(True)))


def _with_dictionary(layer, D):
    return lambda x: torch.func.functional_call(layer, {"dictionary": D}, (x,))


def test_one_step_gradient_flows_through_the_last_step_only():
    x = samples(seed=2).requires_grad_(True)
    layer = NMFLayer(6, 3, n_iter=5, backward="one-step", seed=2, dtype=F64)
    out = layer(x)
    (g_x,) = torch.autograd.grad(out.square().sum(), x)
    # the same by hand: 4 steps detached, the last one with autograd (x and the iterate's start)
    unrolled = NMFLayer(6, 3, n_iter=4, backward="unrolled", seed=2, dtype=F64)
    W4, H4 = unrolled.factorize(x.detach())
    x2 = x.detach().clone().requires_grad_(True)
    W5, H5 = layer._step(x2, W4.detach(), H4.detach())
    torch.testing.assert_close(out.detach(), (W5 @ H5).detach())
    (expected,) = torch.autograd.grad((W5 @ H5).square().sum(), x2)
    torch.testing.assert_close(g_x, expected)
    # and the dictionary is trained: its gradient is not zero
    layer.dictionary.grad = None
    layer(x.detach()).square().sum().backward()
    assert float(layer.dictionary.grad.abs().sum()) > 0


def test_nmf_layer_bad_input():
    with pytest.raises(ValueError, match="backward must be one of"):
        NMFLayer(4, 2, backward="implicitly")
    with pytest.raises(ValueError, match="implicit_tol must be a number >= 0"):
        NMFLayer(4, 2, backward="implicit", implicit_tol=-1.0)
    with pytest.raises(ValueError, match="n_iter must be an integer >= 1"):
        NMFLayer(4, 2, n_iter=0)
    layer = NMFLayer(4, 2)
    with pytest.raises(ValueError, match=r"x must be a tensor of shape \(B, 4, n\)"):
        layer(torch.rand(2, 5, 3))
    with pytest.raises(ValueError, match="negative"):
        layer(-torch.ones(2, 4, 3))


def test_vmap_over_samples_equals_the_batch():
    from torch.func import vmap

    x = samples(B=4, seed=5)
    layer = NMFLayer(6, 3, n_iter=3, backward="unrolled", seed=5, validate=False, dtype=F64)
    torch.testing.assert_close(vmap(layer)(x), layer(x), rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    x = samples(B=3, seed=6)
    layer = NMFLayer(6, 3, n_iter=3, backward="one-step", seed=6, dtype=F64)
    compiled = torch.compile(layer, backend="aot_eager")  # no C++ compiler needed
    xr = x.clone().requires_grad_()
    out = compiled(xr)
    torch.testing.assert_close(out, layer(x), rtol=1e-12, atol=1e-13)
    out.sum().backward()
    xe = x.clone().requires_grad_()
    layer(xe).sum().backward()
    torch.testing.assert_close(xr.grad, xe.grad, rtol=1e-10, atol=1e-12)


def _converging_input(seed=0, m=6, n=5, r=2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(m, r, generator=g, dtype=F64) @ torch.rand(r, n, generator=g, dtype=F64)
            + 0.3 * torch.rand(m, n, generator=g, dtype=F64))


@pytest.mark.parametrize("loss", ["frobenius", "kl"])
def test_implicit_backward_against_finite_differences(loss):
    """At a converged forward the implicit gradient is the derivative of the output: gradcheck
    (float64, central differences of the whole forward) and the unrolled gradient agree."""
    X = _converging_input(1, 4, 3)  # the gauged MU reaches its fixed point to 1e-15 within 500 steps
    layer = NMFLayer(4, 2, n_iter=600, loss=loss, backward="implicit", learn_dictionary=False, seed=0,
                     implicit_max_iter=20000, implicit_tol=1e-13, dtype=F64)
    assert torch.autograd.gradcheck(lambda x: layer(x), (X.clone().requires_grad_(),), eps=1e-6, atol=1e-6)
    G = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = X.clone().requires_grad_()
    (layer(x) * G).sum().backward()
    unrolled = NMFLayer(4, 2, n_iter=600, loss=loss, backward="unrolled", learn_dictionary=False, seed=0, dtype=F64)
    y = X.clone().requires_grad_()
    (unrolled(y) * G).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-7, atol=1e-9)


def test_implicit_backward_trains_the_dictionary_straight_through():
    """D's gradient is that of the output with respect to W, summed over the batch (as in one-step)."""
    X = torch.stack([_converging_input(s) for s in range(3)])
    layer = NMFLayer(6, 2, n_iter=300, backward="implicit", seed=0, dtype=F64)
    W, H = layer.factorize(X)
    G = torch.randn_like(W)
    (W * G).sum().backward()
    torch.testing.assert_close(layer.dictionary.grad, G.sum(0) * (layer.dictionary.detach() >= 0))


def test_hals_layer_steps_are_the_in_place_hals_sweeps():
    """solver='hals': each step is one HALS sweep of H, then of W, per sample, as the in-place kernel."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 6, 7, generator=g, dtype=F64)
    layer = NMFLayer(6, 3, n_iter=4, solver="hals", backward="unrolled", seed=0, dtype=F64)
    W, H = layer.factorize(x)
    for b in range(2):
        D = layer.dictionary.detach().clamp_min(0)
        Wb, Hb = D.clone(), torch.softmax(D.T @ x[b], dim=0)
        for _ in range(4):
            kernels.hals_sweep_(Hb, Wb.T @ x[b], Wb.T @ Wb)
            Wt = Wb.T.contiguous()
            kernels.hals_sweep_(Wt, Hb @ x[b].T, Hb @ Hb.T)
            Wb = Wt.T
        torch.testing.assert_close(W[b].detach(), Wb, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(H[b].detach(), Hb, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="solver='hals' minimises the Frobenius loss"):
        NMFLayer(6, 3, solver="hals", loss="kl")
    with pytest.raises(ValueError, match="solver must be one of"):
        NMFLayer(6, 3, solver="als")


@pytest.mark.parametrize("backward", ["unrolled", "implicit"])
def test_hals_layer_gradients_against_finite_differences(backward):
    X = _converging_input(1, 4, 3)
    n_iter = 3 if backward == "unrolled" else 300
    layer = NMFLayer(4, 2, n_iter=n_iter, solver="hals", backward=backward, learn_dictionary=False, seed=0,
                     implicit_max_iter=20000, implicit_tol=1e-13, dtype=F64)
    assert torch.autograd.gradcheck(lambda x: layer(x), (X.clone().requires_grad_(),), eps=1e-6, atol=1e-6)
