r"""The NMF model: X (m x n) ~ W (m x r) H (r x n) with W, H >= 0.

.. math::
    \min_{W \ge 0,\, H \ge 0}\; D(X \mid WH)
    + \lambda^{(1)}_W \|W\|_1 + \tfrac12 \lambda^{(2)}_W \|W\|_F^2
    + \lambda^{(1)}_H \|H\|_1 + \tfrac12 \lambda^{(2)}_H \|H\|_F^2

where D is the Frobenius loss :math:`\tfrac12\|X-WH\|_F^2`, a beta-divergence
(KL, Itakura-Saito, any beta), or the (weighted) L1 loss.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn

from ..data import Data, check_dtype, prepare_data
from ..exceptions import NotFittedError
from ..fit import FitResult, run_fit
from ..init import initialize, make_generator
from ..problem import NMFProblem, Penalties, resolve_loss
from ..registry import default_solver, get_solver
from .base import FactorModule, replace_parameter_, set_factor_

__all__ = ["NMF"]


def _check_rank(rank) -> int:
    if isinstance(rank, bool) or not isinstance(rank, int):
        raise TypeError(f"rank must be a positive integer, got {rank!r}")
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    return rank


class NMF(FactorModule):
    r"""Nonnegative matrix factorization X ~ W H as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int
        Factorization rank r (>= 1, <= min(m, n) at fit time).
    shape : (int, int), optional
        (m, n): allocate W (m x r) and H (r x n) now and fill them by
        :meth:`reset_parameters`; otherwise they are created by :meth:`fit`.
    loss : str
        ``"frobenius"``, ``"kl"``, ``"is"``, ``"beta"`` (with ``beta=``), ``"l1"``,
        ``"wl1"`` (with ``zero_weight=``).
    beta : float, optional
        The beta of ``loss="beta"``.
    zero_weight : float, optional
        Weight lambda >= 0 of the zeros of X in the ``"wl1"`` loss.
    solver : str, optional
        Name of a registered solver (:func:`torchnmf_l1.available_solvers`); by
        default the registry's default for the loss (HALS for Frobenius, MU for
        beta-divergences, sCD for ``"l1"``/``"wl1"``).
    init : str, optional
        Registered initialisation: ``"random"``, ``"nndsvd"``, ``"nndsvda"``,
        ``"nndsvdar"``, ``"l1-init"``, ``"custom"``; by default the solver's
        ``default_init`` (``"nndsvda"``; ``"l1-init"`` for the L1 solvers).
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalty weights (>= 0).
    seed : int, optional
        Seed of the ``torch.Generator`` used by random initialisations.
    device, dtype :
        Where and in which precision (float32 or float64) the factors live.
    **solver_options
        Passed to the solver (e.g. ``alpha``, ``delta`` for HALS).

    Attributes
    ----------
    W : Parameter, shape (m, r)
    H : Parameter, shape (r, n)
    result_ : FitResult
        Result of the last :meth:`fit`.

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import NMF
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(30, 4, dtype=torch.float64, generator=g) @ torch.rand(4, 20, dtype=torch.float64, generator=g)
    >>> model = NMF(4, dtype=torch.float64, seed=0)
    >>> result = model.fit(X, max_iter=2000, tol=1e-10)
    >>> bool(torch.linalg.norm(X - model()) / torch.linalg.norm(X) < 1e-2)
    True
    """

    def __init__(
        self,
        rank: int,
        shape: tuple[int, int] | None = None,
        *,
        loss: str = "frobenius",
        beta: float | None = None,
        zero_weight: float | None = None,
        solver: str | None = None,
        init: str | None = None,
        l1_reg_W: float = 0.0,
        l2_reg_W: float = 0.0,
        l1_reg_H: float = 0.0,
        l2_reg_H: float = 0.0,
        seed: int | None = None,
        device=None,
        dtype=None,
        **solver_options,
    ):
        super().__init__()
        self.rank = _check_rank(rank)
        self.loss = resolve_loss(loss, beta=beta, zero_weight=zero_weight)
        self.penalties = Penalties(l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H)
        self.solver = solver if solver is not None else default_solver(self.loss.name)
        solver_cls = get_solver(self.solver)
        if self.loss.name not in solver_cls.losses:
            raise ValueError(
                f"solver {self.solver!r} does not handle loss {self.loss.name!r}; it handles {sorted(solver_cls.losses)}"
            )
        unknown = sorted(set(solver_options) - set(solver_cls.options))
        if unknown:
            raise TypeError(f"solver {self.solver!r} got unexpected option(s) {unknown}; its options are {sorted(solver_cls.options)}")
        self.solver_options = dict(solver_options)
        from ..registry import get_init

        init = solver_cls.default_init if init is None else init
        get_init(init)
        self.init = init
        if seed is not None:
            make_generator(seed, "cpu")
        self.seed = seed
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        if shape is None:
            m, n = 0, 0
        else:
            if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
                raise ValueError(f"shape must be two positive integers (m, n), got {shape!r}")
            m, n = shape
            if rank > min(m, n):
                raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
        self.W = nn.Parameter(torch.empty(m, rank, device=device, dtype=dtype))
        self.H = nn.Parameter(torch.empty(rank, n, device=device, dtype=dtype))
        self.reset_parameters()

    # ------------------------------------------------------------------ PyTorch plumbing
    def reset_parameters(self) -> None:
        """Fill W and H with uniform [0, 1) values from the model's seed."""
        generator = make_generator(self.seed, self.W.device)
        with torch.no_grad():
            self.W.uniform_(0, 1, generator=generator)
            self.H.uniform_(0, 1, generator=generator)

    def extra_repr(self) -> str:
        m, n = self.W.shape[0], self.H.shape[1]
        parts = [f"rank={self.rank}", f"shape=({m}, {n})", f"loss={self.loss.name!r}"]
        if self.loss.name == "beta":
            parts.append(f"beta={self.loss.beta:g}")
        if self.loss.name == "wl1":
            parts.append(f"zero_weight={self.loss.zero_weight:g}")
        parts += [f"solver={self.solver!r}", f"init={self.init!r}"]
        return ", ".join(parts)

    @property
    def fitted(self) -> bool:
        return self.W.shape[0] > 0 and self.H.shape[1] > 0

    def forward(self) -> Tensor:
        """The reconstruction W H (m x n), differentiable with respect to W and H."""
        if not self.fitted:
            raise NotFittedError("this NMF has no factors yet: call fit(X) or create it with shape=(m, n)")
        return self.W @ self.H

    reconstruct = forward

    # ------------------------------------------------------------------ fitting
    def _prepare(self, X) -> Data:
        if isinstance(X, Tensor) and X.device != self.W.device:
            raise ValueError(
                f"X is on {X.device} but the model is on {self.W.device}; move one of them (X.to(...) or model.to(...))"
            )
        data = prepare_data(X, device=self.W.device, dtype=self.W.dtype, allow_zeros=not self.loss.needs_positive_data)
        m, n = data.shape
        if self.rank > min(m, n):
            raise ValueError(f"rank must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}, got {self.rank}")
        return data

    def _problem(self, data: Data) -> NMFProblem:
        return NMFProblem(data, self.loss, self.penalties)

    def _initial_factors(self, data: Data, init, W, H, fix_W, fix_H, generator):
        m, n = data.shape
        init = self.init if init is None else init
        if init == "warm":
            if not self.fitted or tuple(self.W.shape) != (m, self.rank) or tuple(self.H.shape) != (self.rank, n):
                raise ValueError(
                    f"init='warm' needs factors of shapes {(m, self.rank)} and {(self.rank, n)}, "
                    f"the model has {tuple(self.W.shape)} and {tuple(self.H.shape)}"
                )
            return self.W.detach().clone(), self.H.detach().clone()
        if fix_W and W is None:
            if tuple(self.W.shape) != (m, self.rank):
                raise ValueError(f"fix_W=True needs W of shape {(m, self.rank)} (pass W= or fit first), the model has {tuple(self.W.shape)}")
            W = self.W.detach()
        if fix_H and H is None:
            if tuple(self.H.shape) != (self.rank, n):
                raise ValueError(f"fix_H=True needs H of shape {(self.rank, n)} (pass H= or fit first), the model has {tuple(self.H.shape)}")
            H = self.H.detach()
        if W is not None and H is not None:
            init = "custom"
        elif W is not None or H is not None:
            W0, H0 = initialize(data, self.rank, init, generator=generator)
            from ..data import check_factor

            like = dict(device=data.device, dtype=data.dtype)
            W = check_factor(W, "W", (m, self.rank), **like) if W is not None else W0
            H = check_factor(H, "H", (self.rank, n), **like) if H is not None else H0
            return W, H
        return initialize(data, self.rank, init, generator=generator, W=W, H=H)

    def fit(
        self,
        X,
        *,
        max_iter: int = 200,
        tol: float = 1e-4,
        time_limit: float | None = None,
        check_every: int = 10,
        init: str | None = None,
        W=None,
        H=None,
        fix_W: bool = False,
        fix_H: bool = False,
        callbacks=(),
        progress: bool = False,
        generator: torch.Generator | None = None,
    ) -> FitResult:
        """Fit W and H to X.

        Parameters
        ----------
        X : array-like (numpy, scipy.sparse, torch dense or sparse), shape (m, n)
            Nonnegative data; sparse X stays sparse.
        max_iter, tol, time_limit, check_every, callbacks, progress :
            See :func:`torchnmf_l1.fit.run_fit`.
        init : str, optional
            Overrides the model's ``init``; ``"warm"`` starts from the current factors.
        W, H : array-like, optional
            Starting (or, with ``fix_W`` / ``fix_H``, fixed) factors.
        fix_W, fix_H : bool
            Keep W (resp. H) fixed: the model's current factor or the one given.
        generator : torch.Generator, optional
            Overrides the model's seed for random initialisations.

        Returns
        -------
        FitResult
            Also stored as ``self.result_``. If anything fails, the model keeps the
            factors it had.
        """
        if fix_W and fix_H:
            raise ValueError("fix_W and fix_H cannot both be True: there would be nothing to fit")
        data = self._prepare(X)
        problem = self._problem(data)
        generator = generator if generator is not None else make_generator(self.seed, data.device)
        with torch.no_grad():
            W0, H0 = self._initial_factors(data, init, W, H, fix_W, fix_H, generator)
            W0, H0 = W0.clone(), H0.clone()
            solver = get_solver(self.solver)(
                problem, W0, H0, update_W=not fix_W, update_H=not fix_H, **self.solver_options
            )
            result = run_fit(
                solver, max_iter=max_iter, tol=tol, time_limit=time_limit, check_every=check_every,
                callbacks=callbacks, progress=progress,
            )
            if not (torch.isfinite(solver.W).all() and torch.isfinite(solver.H).all()):
                raise FloatingPointError(
                    f"solver {self.solver!r} produced non-finite factors ({result.message}); the model keeps its previous factors"
                )
            set_factor_(self, "W", solver.W)
            set_factor_(self, "H", solver.H)
        self.result_ = result
        return result

    def fit_transform(self, X, **fit_kwargs) -> Tensor:
        """Fit to X and return H (r x n), detached."""
        self.fit(X, **fit_kwargs)
        return self.H.detach().clone()

    def transform(self, X, *, max_iter: int = 200, tol: float = 1e-4, **fit_kwargs) -> Tensor:
        """Solve for H (r x n_new) with the model's W fixed; the model is not modified.

        Returns
        -------
        Tensor, shape (r, n_new)
        """
        if not self.fitted:
            raise NotFittedError("transform needs a fitted W: call fit first")
        data = self._prepare(X)
        if data.shape[0] != self.W.shape[0]:
            raise ValueError(f"X must have {self.W.shape[0]} rows (the rows of W), got shape {data.shape}")
        problem = self._problem(data)
        generator = make_generator(self.seed, data.device)
        with torch.no_grad():
            W = self.W.detach().clone()
            scale = torch.sqrt(kernels_mean(data) / self.rank)
            H = torch.rand(self.rank, data.shape[1], generator=generator, device=data.device, dtype=data.dtype) * scale
            solver = get_solver(self.solver)(problem, W, H, update_W=False, update_H=True, **self.solver_options)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=Warning)
                run_fit(solver, max_iter=max_iter, tol=tol, warn=False, **fit_kwargs)
        return solver.H

    def objective(self, X) -> float:
        """The objective (loss plus penalties) of the current factors on X."""
        if not self.fitted:
            raise NotFittedError("objective needs factors: call fit first")
        data = self._prepare(X)
        with torch.no_grad():
            return float(self._problem(data).objective(self.W, self.H))


def kernels_mean(data: Data) -> Tensor:
    from .. import kernels

    m, n = data.shape
    return kernels.data_sum(data.X) / (m * n)
