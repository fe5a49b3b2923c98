r"""NNLS / NMF layers: nonnegative codes of a learnable dictionary, differentiable end to end.

For an input batch x (..., m) and a dictionary W (m x r), the layer returns

.. math:: h(x, W) = \arg\min_{h \ge 0}\; D(x \mid W h) + \lambda \mathbf{1}^T h

with D the Frobenius loss :math:`\tfrac12\|x - Wh\|^2` (solved by FISTA projected
gradient or by multiplicative updates) or the generalised KL divergence
(multiplicative updates). Gradients with respect to x and W come either from
autograd through the fixed number of solver iterations (``backward="unrolled"``,
memory grows with ``n_iter``) or from implicit differentiation of the KKT
conditions at the solution (``backward="implicit"``, one batched r x r solve,
memory independent of ``n_iter``).

References
----------
B. Amos and J. Z. Kolter, "OptNet: differentiable optimization as a layer in neural
networks", ICML 2017.
A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for
linear inverse problems", SIAM J. Imaging Sciences 2(1), 2009.
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from .. import kernels
from ..checks import check_entries
from ..data import check_dtype
from ..init import make_generator
from ..registry import available_solvers, get_solver

__all__ = ["NNLSLayer", "NMFLayer", "nnls_codes"]

BACKWARDS = ("unrolled", "implicit")
LOSSES = ("frobenius", "kl")


class _ImplicitNNLS(torch.autograd.Function):
    """h = solve(x, W) forward; implicit KKT differentiation backward (saves x, W, h only)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, W, solve, loss, active_tol):
        return solve(x, W)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, W, _, loss, active_tol = inputs
        ctx.save_for_backward(x, W, output)
        ctx.loss = loss
        ctx.active_tol = active_tol

    @staticmethod
    def backward(ctx, grad_h):
        x, W, h = ctx.saved_tensors
        grad_x, grad_W = kernels.nnls_implicit_vjp(grad_h, h, x, W, ctx.loss, ctx.active_tol)
        return grad_x, grad_W, None, None, None


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def _check_options(backward, solver, loss, n_iter, l1, active_tol):
    _check_choice(backward, "backward", BACKWARDS)
    _check_choice(solver, "solver", tuple(available_solvers("nnls")))
    _check_choice(loss, "loss", LOSSES)
    handled = get_solver(solver, family="nnls").losses
    if loss not in handled:
        raise ValueError(f"solver {solver!r} does not handle loss {loss!r}; it handles {handled}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    if isinstance(l1, bool) or not isinstance(l1, (int, float)) or not math.isfinite(l1) or l1 < 0:
        raise ValueError(f"l1 must be a finite number >= 0, got {l1!r}")
    if active_tol is not None and (not isinstance(active_tol, (int, float)) or not 0 <= active_tol < 1):
        raise ValueError(f"active_tol must be a number in [0, 1), got {active_tol!r}")


def nnls_codes(
    x: Tensor,
    W: Tensor,
    *,
    backward: str = "implicit",
    solver: str = "pg",
    loss: str = "frobenius",
    n_iter: int = 100,
    l1: float = 0.0,
    active_tol: float | None = None,
    validate: bool = True,
) -> Tensor:
    r"""Nonnegative codes of ``x`` (..., m) in the dictionary ``W`` (m x r), differentiable.

    .. math:: h = \arg\min_{h \ge 0} D(x \mid W h) + \lambda \mathbf{1}^T h

    Parameters
    ----------
    x : Tensor, shape (..., m)
        Any number of leading batch dimensions (none: a single vector).
    W : Tensor, shape (m, r)
        Dictionary, on x's device and of x's dtype.
    backward : {"implicit", "unrolled"}
    solver : {"pg", "mu"}
        FISTA projected gradient (Frobenius only) or multiplicative updates.
    loss : {"frobenius", "kl"}
    n_iter : int
        Fixed number of solver iterations.
    l1 : float
        Weight lambda >= 0 of the L1 penalty on the codes.
    active_tol : float, optional
        Relative threshold under which a code entry counts as zero in the implicit
        backward (default 0 for ``"pg"``, 1e-4 for ``"mu"``, which never reaches 0).
    validate : bool
        Check that x and W are finite, and nonnegative where the solver or loss needs
        it (one host synchronisation each; switch off under ``torch.func.vmap``).

    Returns
    -------
    Tensor, shape (..., r)

    Raises
    ------
    ValueError
        Bad option, W not 2-D or with a row count other than x's last dimension,
        x and W on different devices, NaN or infinite entries, negative x or W where
        MU or KL needs nonnegative data.
    TypeError
        x and W of different dtypes, not floating point, or sparse.
    """
    _check_options(backward, solver, loss, n_iter, l1, active_tol)
    if not isinstance(x, Tensor) or not isinstance(W, Tensor):
        raise TypeError(f"x and W must be torch tensors, got {type(x).__name__} and {type(W).__name__}")
    for name, t in (("x", x), ("W", W)):
        if t.layout != torch.strided:
            raise TypeError(f"{name} must be a dense tensor, got layout {t.layout}")
    if W.dim() != 2:
        raise ValueError(f"W must be 2-D (m, r), got shape {tuple(W.shape)}")
    if x.dim() < 1 or x.shape[-1] != W.shape[0]:
        raise ValueError(f"x must have shape (..., {W.shape[0]}) to match W of shape {tuple(W.shape)}, got {tuple(x.shape)}")
    if x.device != W.device:
        raise ValueError(f"x is on {x.device} but W is on {W.device}; move x with x.to({str(W.device)!r})")
    if not x.is_floating_point() or x.dtype != W.dtype:
        raise TypeError(f"x must be floating point with W's dtype {W.dtype}, got {x.dtype}")
    solver_cls = get_solver(solver, family="nnls")
    if validate:
        nonnegative = solver_cls.needs_nonnegative or loss == "kl"
        for name, t in (("x", x), ("W", W)):
            try:
                check_entries(t.detach(), name, nonnegative=nonnegative)
            except ValueError as exc:
                why = f"; solver {solver!r} with loss {loss!r} needs nonnegative data" if "negative" in str(exc) else ""
                raise ValueError(f"{exc}{why}") from None
    batch_shape = x.shape[:-1]
    x2 = x.reshape(-1, W.shape[0])
    solve = functools.partial(solver_cls.solve, n_iter=n_iter, loss=loss, l1=float(l1))
    if backward == "unrolled":
        h = solve(x2, W)
    else:
        tol = solver_cls.active_tol if active_tol is None else float(active_tol)
        h = _ImplicitNNLS.apply(x2, W, solve, loss, tol)
    return h.reshape(*batch_shape, W.shape[1])


class NNLSLayer(nn.Module):
    r"""A layer that maps inputs to their nonnegative codes in a learnable dictionary.

    .. math:: h(x) = \arg\min_{h \ge 0}\; D(x \mid W h) + \lambda \mathbf{1}^T h

    Parameters
    ----------
    in_features : int
        m, the size of each input.
    rank : int
        r, the number of atoms (columns of W).
    backward : {"implicit", "unrolled"}
        Implicit differentiation of the KKT conditions on the active set (memory
        independent of ``n_iter``), or autograd through the iterations.
    solver : {"pg", "mu"}
        FISTA projected gradient (Frobenius) or multiplicative updates (Frobenius, KL;
        needs x >= 0).
    loss : {"frobenius", "kl"}
    n_iter : int
        Fixed number of solver iterations per forward.
    l1 : float
        L1 penalty weight on the codes.
    active_tol : float, optional
        See :func:`nnls_codes`.
    seed : int, optional
        Seed of the uniform initialisation of W.
    device, dtype :
        Of W.

    Attributes
    ----------
    W : Parameter, shape (m, r)
        The dictionary. It is a plain parameter: keep it nonnegative during
        training by calling :meth:`project_` (or
        :func:`torchnmf_l1.parametrize.project_`) after each optimiser step, or
        register a parametrization from :mod:`torchnmf_l1.parametrize`
        (``positive(layer, "W", "softplus")``), after which ``layer.W`` is the
        constrained tensor.

    Notes
    -----
    ``torch.func.vmap`` works with both backward modes (the implicit one through
    ``generate_vmap_rule``), including ``vmap(grad(...))`` for per-sample gradients,
    for ``solver="pg"``; with ``solver="mu"`` or ``loss="kl"`` the layer checks that x
    and W are nonnegative, a data-dependent branch that vmap refuses: call
    :func:`nnls_codes` with ``validate=False`` there. ``torch.compile`` traces the
    layer (tested with the ``aot_eager`` backend; outputs and gradients equal eager).

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import NNLSLayer
    >>> layer = NNLSLayer(in_features=6, rank=3, seed=0, dtype=torch.float64)
    >>> x = torch.rand(5, 6, dtype=torch.float64)
    >>> h = layer(x)
    >>> tuple(h.shape), bool((h >= 0).all())
    ((5, 3), True)
    """

    def __init__(
        self,
        in_features: int,
        rank: int,
        *,
        backward: str = "implicit",
        solver: str = "pg",
        loss: str = "frobenius",
        n_iter: int = 100,
        l1: float = 0.0,
        active_tol: float | None = None,
        seed: int | None = None,
        device=None,
        dtype=None,
    ):
        super().__init__()
        for name, value in (("in_features", in_features), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        _check_options(backward, solver, loss, n_iter, l1, active_tol)
        self.in_features, self.rank = in_features, rank
        self.backward, self.solver, self.loss = backward, solver, loss
        self.n_iter, self.l1, self.active_tol = n_iter, float(l1), active_tol
        self.seed = seed
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        self.W = nn.Parameter(torch.empty(in_features, rank, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill W with uniform [0, 1) entries (from ``seed``) and scale its columns to unit norm."""
        W = self.parametrizations.W.original if hasattr(self, "parametrizations") else self.W
        generator = make_generator(self.seed, W.device)
        with torch.no_grad():
            W.uniform_(0, 1, generator=generator)
            W.div_(torch.linalg.vector_norm(W, dim=0).clamp_min(torch.finfo(W.dtype).tiny))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, rank={self.rank}, backward={self.backward!r}, "
            f"solver={self.solver!r}, loss={self.loss!r}, n_iter={self.n_iter}, l1={self.l1:g}"
        )

    def forward(self, x: Tensor) -> Tensor:
        """Codes of x (..., m): a tensor of shape (..., r), differentiable in x and W."""
        W = self.W
        if tuple(W.shape) != (self.in_features, self.rank):
            raise ValueError(
                f"W must have shape (in_features, rank) = {(self.in_features, self.rank)}, got {tuple(W.shape)}"
            )
        return nnls_codes(
            x, W, backward=self.backward, solver=self.solver, loss=self.loss, n_iter=self.n_iter,
            l1=self.l1, active_tol=self.active_tol,
        )

    def project_(self) -> "NNLSLayer":
        """Clamp the raw W at 0 in place (no-op when W is parametrized); call after an optimiser step."""
        if "W" in self._parameters:
            with torch.no_grad():
                kernels.project_nonneg_(self.W)
        return self


NMF_BACKWARDS = ("one-step", "unrolled", "implicit")
NMF_LAYER_SOLVERS = ("mu", "hals")


class NMFLayer(nn.Module):
    r"""Per-sample NMF as a layer: each input matrix replaced by its rank-r factorization.

    For a batch of nonnegative matrices :math:`X_b` (B, m, n) — a feature map reshaped to
    channels x positions, say — the layer runs ``n_iter`` multiplicative updates (or HALS
    sweeps, ``solver="hals"``) of :math:`X_b \approx W_b H_b` (Frobenius or KL), each sample
    on its own, from the start
    :math:`W_b = D` (the layer's dictionary, m x r) and :math:`H_b = \mathrm{softmax}(D^T X_b)`
    over the r components, coefficients then bases in each step, as the "Hamburger" module
    (Geng et al., 2021), and returns :math:`W_b H_b` (or the factors, :meth:`factorize`).

    Backward: ``"one-step"`` (the Hamburger paper's one-step gradient: the first
    ``n_iter - 1`` steps run without autograd and the gradient flows through the last step
    only, memory independent of ``n_iter``; the start's gradient, that of D, passes straight
    through the first steps, so that a learned dictionary is trained), ``"unrolled"``
    (autograd through every step: the exact gradient of the computed output, memory growing
    with ``n_iter``) or ``"implicit"`` (the implicit function theorem at the fixed point
    :math:`z^\star = T(z^\star, X)` of one step T, z = (W, H): the adjoint
    :math:`v = g + (\partial T/\partial z)^T v` solved by fixed-point iteration with one
    vector-Jacobian product of T per iteration, then :math:`\partial T/\partial X^T v`; memory
    of one step whatever ``n_iter``, exact when the forward has converged (Bai, Kolter and
    Koltun, 2019). MU is invariant to the scale of W's columns moved into H, which makes the
    fixed points a continuum and the adjoint iteration diverge; the implicit mode fixes that
    gauge, W with unit-norm columns after every step (WH unchanged), so that the fixed point
    is isolated. D's gradient passes straight through, as in one-step.)

    Parameters
    ----------
    in_features : int
        m, the rows of each sample.
    rank : int
        r.
    n_iter : int
        Steps per forward (>= 1).
    loss : {"frobenius", "kl"}
    solver : {"mu", "hals"}
        The step: multiplicative updates (any loss), or one HALS sweep over the rows of H
        then of W (Frobenius; :func:`~torchnmf_l1.kernels.hals_sweep`, differentiable).
    backward : {"one-step", "unrolled", "implicit"}
    learn_dictionary : bool
        D is a Parameter (trained with the network); otherwise a fixed buffer.
    seed : int, optional
        Seed of D's uniform start.
    validate : bool
        Check that x is finite and nonnegative (one read of the device); ``False`` under
        ``torch.func.vmap``, which cannot branch on tensor values.
    implicit_max_iter, implicit_tol : int, float
        ``backward="implicit"``: at most this many adjoint iterations, stopping once the
        change of the adjoint falls under ``implicit_tol`` times its size (read on the
        host, in the backward pass only).
    device, dtype :
        Of D.

    Notes
    -----
    ``torch.func.vmap`` over samples (``validate=False``) gives the batched result, and
    ``torch.compile`` traces the layer (tested with the ``aot_eager`` backend).

    References
    ----------
    Z. Geng, M.-H. Guo, H. Chen, X. Li, K. Wei and Z. Lin, "Is attention better than matrix
    decomposition?", ICLR 2021.
    D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
    """

    def __init__(self, in_features: int, rank: int, *, n_iter: int = 6, loss: str = "frobenius",
                 solver: str = "mu", backward: str = "one-step", learn_dictionary: bool = True,
                 seed: int | None = None, validate: bool = True, implicit_max_iter: int = 1000,
                 implicit_tol: float = 1e-8, device=None, dtype=None):
        super().__init__()
        for name, value, low in (("in_features", in_features, 1), ("rank", rank, 1), ("n_iter", n_iter, 1),
                                 ("implicit_max_iter", implicit_max_iter, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        _check_choice(loss, "loss", LOSSES)
        _check_choice(backward, "backward", NMF_BACKWARDS)
        _check_choice(solver, "solver", NMF_LAYER_SOLVERS)
        if solver == "hals" and loss != "frobenius":
            raise ValueError(f"solver='hals' minimises the Frobenius loss; got loss={loss!r} (use solver='mu' for kl)")
        self.solver = solver
        if isinstance(implicit_tol, bool) or not isinstance(implicit_tol, (int, float)) or not implicit_tol >= 0:
            raise ValueError(f"implicit_tol must be a number >= 0, got {implicit_tol!r}")
        self.implicit_max_iter, self.implicit_tol = implicit_max_iter, float(implicit_tol)
        self.in_features, self.rank, self.n_iter = in_features, rank, n_iter
        self.loss, self.backward, self.seed, self.validate = loss, backward, seed, bool(validate)
        self.beta = 2.0 if loss == "frobenius" else 1.0
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        generator = make_generator(seed, device if device is not None else "cpu")
        D = torch.rand(in_features, rank, generator=generator, device=device, dtype=dtype)
        D = D / torch.linalg.vector_norm(D, dim=0).clamp_min(torch.finfo(dtype).tiny)
        if learn_dictionary:
            self.dictionary = nn.Parameter(D)
        else:
            self.register_buffer("dictionary", D)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, rank={self.rank}, n_iter={self.n_iter}, loss={self.loss!r}, "
                f"solver={self.solver!r}, "
                f"backward={self.backward!r}, learn_dictionary={isinstance(self.dictionary, nn.Parameter)}")

    def _step(self, X: Tensor, W: Tensor, H: Tensor) -> tuple[Tensor, Tensor]:
        if self.solver == "hals":
            H = kernels.hals_sweep(H, W.mT @ X, W.mT @ W)
            Wt = kernels.hals_sweep(W.mT, H @ X.mT, H @ H.mT)
            return Wt.mT, H
        H = H * kernels.mu_ratio(H, *kernels.beta_mu_ratio_terms(X, W, H, self.beta))
        Wt = W.mT
        Wt = Wt * kernels.mu_ratio(Wt, *kernels.beta_mu_ratio_terms(X.mT, H.mT, Wt, self.beta))
        return Wt.mT, H

    def _gauged_step(self, X: Tensor, W: Tensor, H: Tensor) -> tuple[Tensor, Tensor]:
        """One step, then W's columns at unit norm and their scale in H (WH unchanged)."""
        W, H = self._step(X, W, H)
        W, norms = kernels.normalize_columns(W, eps=torch.finfo(W.dtype).tiny)
        return W, H * norms.unsqueeze(-1)

    def factorize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(W, H) of each sample: (B, m, r) and (B, r, n), for x of shape (B, m, n) (or (m, n))."""
        if not isinstance(x, Tensor) or x.dim() not in (2, 3) or x.shape[-2] != self.in_features:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor of shape (B, {self.in_features}, n) or ({self.in_features}, n), got {shape}")
        if self.validate:
            check_entries(x.detach(), "x")
        single = x.dim() == 2
        X = x.unsqueeze(0) if single else x
        D = self.dictionary.clamp_min(0)
        W = D.expand(X.shape[0], -1, -1)
        H = torch.softmax(D.mT @ X, dim=-2)
        if self.backward == "implicit":
            with torch.no_grad():
                Wd, Hd = W.detach(), H.detach()
                for _ in range(self.n_iter):
                    Wd, Hd = self._gauged_step(X.detach(), Wd, Hd)
            W, H = _ImplicitFixedPoint.apply(X, Wd, Hd, self)
            W = W + (D - D.detach())  # the dictionary's gradient straight through, as in one-step
        elif self.backward == "one-step":
            with torch.no_grad():
                Wd, Hd = W.detach(), H.detach()
                for _ in range(self.n_iter - 1):
                    Wd, Hd = self._step(X.detach(), Wd, Hd)
            # the last step with autograd, from the detached iterate (the one-step gradient); the
            # dictionary's gradient passes straight through the first steps
            W, H = self._step(X, Wd + (W - W.detach()), Hd)
        else:
            for _ in range(self.n_iter):
                W, H = self._step(X, W, H)
        return (W[0], H[0]) if single else (W, H)

    def forward(self, x: Tensor) -> Tensor:
        """W H of each sample, the shape of x."""
        W, H = self.factorize(x)
        return W @ H


class _ImplicitFixedPoint(torch.autograd.Function):
    """(W*, H*) given as the fixed point of ``layer._gauged_step``; the backward solves the
    adjoint equation by fixed-point iteration (see :class:`NMFLayer`, ``backward="implicit"``)."""

    @staticmethod
    def forward(ctx, X, W, H, layer):
        ctx.layer = layer
        ctx.save_for_backward(X, W, H)
        return W.clone(), H.clone()

    @staticmethod
    def backward(ctx, grad_W, grad_H):
        X, W, H = ctx.saved_tensors
        layer = ctx.layer
        with torch.enable_grad():
            X0 = X.detach().requires_grad_(X.requires_grad)
            W0, H0 = W.detach().requires_grad_(), H.detach().requires_grad_()
            W1, H1 = layer._gauged_step(X0, W0, H0)
            g = (torch.zeros_like(W) if grad_W is None else grad_W, torch.zeros_like(H) if grad_H is None else grad_H)
            try:
                v = kernels.fixed_point_adjoint((W1, H1), (W0, H0), g, max_iter=layer.implicit_max_iter,
                                                tol=layer.implicit_tol)
            except RuntimeError as error:
                raise RuntimeError(f"NMFLayer(backward='implicit'): {error}; raise n_iter or use "
                                   "backward='unrolled'") from None
            grad_X = torch.autograd.grad((W1, H1), (X0,), v)[0] if X.requires_grad else None
        return grad_X, None, None, None
