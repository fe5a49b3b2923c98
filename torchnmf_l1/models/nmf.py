r"""The NMF model: X (m x n) ~ W (m x r) H (r x n) with W, H >= 0.

.. math::
    \min_{W \ge 0,\, H \ge 0}\; D(X \mid WH)
    + \lambda^{(1)}_W \|W\|_1 + \tfrac12 \lambda^{(2)}_W \|W\|_F^2
    + \lambda^{(1)}_H \|H\|_1 + \tfrac12 \lambda^{(2)}_H \|H\|_F^2

where D is the Frobenius loss :math:`\tfrac12\|X-WH\|_F^2`, a beta-divergence
(KL, Itakura-Saito, any beta), or the (weighted) L1 loss. A batch of B matrices
(a (B, m, n) tensor or a list) is fitted as B independent problems in the same kernels.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..data import Data, block_diagonal, check_dtype, check_factor, floating_dtype
from ..missing import prepare_weighted
from ..exceptions import NotFittedError
from ..fit import FitResult
from ..init import initialize, make_generator, random_codes
from ..params import Anything, Choice, Integer, Number, OneOf, Param, Registered, check_params
from ..problem import LOSS_ALIASES, FactorState, NMFProblem, Penalties, resolve_loss
from ..registry import default_solver, get_solver
from .base import FactorModule, check_device, set_factor_

__all__ = ["NMF"]

_PENALTY = Number(0)

NMF_PARAMETERS = {
    "rank": Param(None, Integer(1), "factorization rank r (<= min(m, n) at fit time)", required=True),
    "shape": Param(None, Anything("(m, n), two positive integers, or None"), "allocate W and H now"),
    "loss": Param("frobenius", Choice(*LOSS_ALIASES), "the loss D(X | WH)"),
    "beta": Param(None, OneOf(None, Number()), "beta of loss='beta'"),
    "zero_weight": Param(None, OneOf(None, Number(0)), "weight lambda of the zeros of X in loss='wl1'"),
    "solver": Param(None, OneOf(None, Registered("nmf")), "registered solver (default: the loss's)"),
    "init": Param(None, OneOf(None, Registered("nmf", init=True)), "registered initialisation (default: the solver's)"),
    "l1_reg_W": Param(0.0, _PENALTY, "L1 penalty on W"),
    "l2_reg_W": Param(0.0, _PENALTY, "squared-L2 penalty on W"),
    "l1_reg_H": Param(0.0, _PENALTY, "L1 penalty on H"),
    "l2_reg_H": Param(0.0, _PENALTY, "squared-L2 penalty on H"),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the random initialisations"),
    "n_replicates": Param(None, OneOf(None, Integer(1)),
                          "fit this many seeded starts of one X at once (replicate k: seed + k)"),
}

#: initialisations that give every replicate the same start
_DETERMINISTIC_INITS = frozenset({"nndsvd", "nndsvda"})


def _copies(data: Data, count: int) -> Data:
    """``count`` copies of one X as a batch: dense (count, m, n), or a block-diagonal CSR."""
    if data.sparse:
        return Data.from_tensor(block_diagonal([data.X] * count), batch=count)
    return Data.from_tensor(data.X.unsqueeze(0).expand(count, -1, -1).contiguous())


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
        Seed of the ``torch.Generator`` used by random initialisations (each problem
        of a batch is initialised from this seed, on its own matrix).
    n_replicates : int, optional
        Fit R starts of one X as one batched problem (every replicate in the same kernels):
        replicate k starts as ``NMF(..., seed=seed + k)`` would (seed 0 when None) and ends
        equal to that single fit; W becomes (R, m, r), H (R, r, n), ``replicate_objectives_``
        the final objective of each and ``best_`` the index of the lowest
        (``fit(X, keep="best")`` keeps only that one). The starts must be random: the
        default init is then ``"random"`` for the solvers whose default is NNDSVD(a).
    device, dtype :
        Where and in which precision (float32 or float64) the factors live; by default
        ``dtype`` follows the data (float32 and float64 are kept, integers become the
        default dtype).
    **solver_options
        Passed to the solver (e.g. ``alpha``, ``delta`` for HALS) and checked by it now.

    Attributes
    ----------
    W : Parameter, shape (m, r), or (B, m, r) after fitting a batch
    H : Parameter, shape (r, n), or (B, r, n)
    result_ : FitResult
        Result of the last :meth:`fit`.

    Notes
    -----
    The options are checked against :attr:`hyperparameters` (the table the command line builds
    its ``[model]`` schema from), the solver options against the solver's own table.

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import NMF
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.rand(30, 4, dtype=torch.float64, generator=g) @ torch.rand(4, 20, dtype=torch.float64, generator=g)
    >>> model = NMF(4, seed=0)
    >>> result = model.fit(X, max_iter=2000, tol=1e-10)
    >>> bool(torch.linalg.norm(X - model.reconstruct()) / torch.linalg.norm(X) < 1e-2)
    True
    """

    hyperparameters = NMF_PARAMETERS
    rank_axes = {"W": -1, "H": -2}
    solver_family = "nmf"

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
        n_replicates: int | None = None,
        device=None,
        dtype=None,
        **solver_options,
    ):
        super().__init__()
        check_params(self.hyperparameters, dict(
            rank=rank, shape=shape, loss=loss, beta=beta, zero_weight=zero_weight, solver=solver, init=init,
            l1_reg_W=l1_reg_W, l2_reg_W=l2_reg_W, l1_reg_H=l1_reg_H, l2_reg_H=l2_reg_H, seed=seed,
            n_replicates=n_replicates,
        ), "NMF")
        check_device(device)
        self.rank = rank
        self.loss = resolve_loss(loss, beta=beta, zero_weight=zero_weight)
        self.penalties = Penalties(l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H)
        solver_cls = get_solver(solver if solver is not None else default_solver(self.loss.name))
        self.solver = solver_cls.name
        if self.loss.name not in solver_cls.losses:
            raise ValueError(
                f"solver {self.solver!r} does not handle loss {self.loss.name!r}; it handles {sorted(solver_cls.losses)}"
            )
        solver_cls.check_options(solver_options)
        self.solver_options = dict(solver_options)
        self.init = solver_cls.default_init if init is None else init.lower()
        self.n_replicates = n_replicates
        if n_replicates is not None and self.init in _DETERMINISTIC_INITS:
            if init is not None:
                raise ValueError(
                    f"init={init!r} gives every replicate the same start; use a random init with n_replicates "
                    "('random', 'nndsvdar', 'l1-init')"
                )
            self.init = "random"
        self.seed = seed
        self.best_: int | None = None
        self.replicate_objectives_: list | None = None
        self.dtype = check_dtype(dtype)
        if shape is None:
            m, n = 0, 0
        else:
            if len(shape) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
                raise ValueError(f"shape must be two positive integers (m, n), got {shape!r}")
            m, n = shape
            if rank > min(m, n):
                raise ValueError(f"rank must be <= min(m, n) = {min(m, n)}, got {rank}")
        dtype = self.dtype or torch.get_default_dtype()
        self.W = nn.Parameter(torch.empty(m, rank, device=device, dtype=dtype))
        self.H = nn.Parameter(torch.empty(rank, n, device=device, dtype=dtype))
        self.reset_parameters()

    # ------------------------------------------------------------------ PyTorch plumbing
    def _apply(self, fn, recurse=True):
        before = self.W.dtype
        out = super()._apply(fn, recurse)
        if self.W.dtype != before:  # model.to(dtype), .double(), ...: the model's precision from now on
            self.dtype = self.W.dtype
        return out

    def reset_parameters(self) -> None:
        """Fill W and H with uniform [0, 1) values from the model's seed."""
        generator = make_generator(self.seed, self.W.device)
        with torch.no_grad():
            self.W.uniform_(0, 1, generator=generator)
            self.H.uniform_(0, 1, generator=generator)

    def extra_repr(self) -> str:
        m, n = self.W.shape[-2], self.H.shape[-1]
        parts = [f"rank={self.rank}", f"shape=({m}, {n})", f"loss={self.loss.name!r}"]
        if self.W.dim() == 3:
            parts.insert(1, f"batch={self.W.shape[0]}")
        if self.loss.name == "beta":
            parts.append(f"beta={self.loss.beta:g}")
        if self.loss.name == "wl1":
            parts.append(f"zero_weight={self.loss.zero_weight:g}")
        parts += [f"solver={self.solver!r}", f"init={self.init!r}"]
        return ", ".join(parts)

    @property
    def fitted(self) -> bool:
        return self.W.shape[-2] > 0 and self.H.shape[-1] > 0

    def forward(self) -> Tensor:
        """The reconstruction W H (m x n, or B x m x n), differentiable with respect to W and H."""
        if not self.fitted:
            raise NotFittedError("this NMF has no factors yet: call fit(X) or create it with shape=(m, n)")
        return self.W @ self.H


    # ------------------------------------------------------------------ fitting
    def _prepare(self, X, mask=None, weights=None, *, allow_batch: bool = True) -> tuple[Data, Data | None, Data]:
        """(data, weights, init_data): see :func:`torchnmf_l1.missing.prepare_weighted`; a
        batch (a list or a 3-D X) takes no mask or weights."""
        if isinstance(X, Tensor) and X.device != self.W.device:
            raise ValueError(
                f"X is on {X.device} but the model is on {self.W.device}; move one of them (X.to(...) or model.to(...))"
            )
        dtype = self.dtype or floating_dtype(X)
        # the L1 solver works on the observed entries only (its weighted medians run over them)
        layout = "support" if self.loss.beta is None else "auto"
        data, weight_data, init_data = prepare_weighted(X, mask, weights, device=self.W.device, dtype=dtype,
                                                        positive=self.loss.needs_positive_data, layout=layout,
                                                        allow_batch=allow_batch)
        m, n = data.shape
        if self.rank > min(m, n):
            raise ValueError(f"rank must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}, got {self.rank}")
        return data, weight_data, init_data

    def _generators(self, data: Data, generator, replicates: int | None = None):
        if replicates is not None:
            if generator is not None:  # the replicates draw their starts one after another from it
                return [generator] * replicates
            base = self.seed if self.seed is not None else int(torch.randint(0, 2**31 - replicates, ()))
            self.replicate_seeds_ = [base + k for k in range(replicates)]
            return [make_generator(seed, data.device) for seed in self.replicate_seeds_]
        if generator is not None:
            return generator if data.batch is None else [generator] * data.batch
        if data.batch is None:
            return make_generator(self.seed, data.device)
        return [make_generator(self.seed, data.device) for _ in range(data.batch)]

    def _initial_factors(self, data: Data, problem: NMFProblem, init, W, H, fix_W, fix_H, generator):
        init = self.init if init is None else init
        W_shape, H_shape = problem.factor_shapes(self.rank)
        like = dict(device=data.device, dtype=data.dtype)
        if init == "warm":
            if not self.fitted or tuple(self.W.shape) != W_shape or tuple(self.H.shape) != H_shape:
                raise ValueError(
                    f"init='warm' needs factors of shapes {W_shape} and {H_shape}, "
                    f"the model has {tuple(self.W.shape)} and {tuple(self.H.shape)}"
                )
            return self.W.detach().to(**like).clone(), self.H.detach().to(**like).clone()
        if fix_W and W is None:
            if tuple(self.W.shape) != W_shape:
                raise ValueError(f"fix_W=True needs W of shape {W_shape} (pass W= or fit first), the model has {tuple(self.W.shape)}")
            W = self.W.detach()
        if fix_H and H is None:
            if tuple(self.H.shape) != H_shape:
                raise ValueError(f"fix_H=True needs H of shape {H_shape} (pass H= or fit first), the model has {tuple(self.H.shape)}")
            H = self.H.detach()
        if W is not None and H is not None:
            return check_factor(W, "W", W_shape, **like), check_factor(H, "H", H_shape, **like)
        if init == "custom":
            raise ValueError("init='custom' needs both W and H (pass W= and H= to fit)")
        if problem.shared:  # replicates of one X: each start drawn on X with its own generator
            starts = [initialize(data, self.rank, init, generator=g) for g in generator]
            W0, H0 = torch.stack([w for w, _ in starts]), torch.stack([h for _, h in starts])
        else:
            W0, H0 = initialize(data, self.rank, init, generator=generator)
        W0 = check_factor(W, "W", W_shape, **like) if W is not None else W0
        H0 = check_factor(H, "H", H_shape, **like) if H is not None else H0
        return W0, H0

    def fit(
        self,
        X,
        *,
        mask=None,
        weights=None,
        init: str | None = None,
        W=None,
        H=None,
        fix_W: bool = False,
        fix_H: bool = False,
        generator: torch.Generator | None = None,
        keep: str = "all",
        **fit_options,
    ) -> FitResult:
        """Fit W and H to X.

        Parameters
        ----------
        X : array-like (numpy, scipy.sparse, torch dense or sparse), shape (m, n)
            Nonnegative data; sparse X stays sparse. A batch: a (B, m, n) tensor or a
            list of B matrices (dense, or sparse), each fitted on its own. NaN entries of
            a dense X are missing.
        mask : bool array-like or sparse, shape (m, n), optional
            True = observed; the loss is summed over the observed entries only. A sparse
            mask (its stored True entries) costs per iteration in proportion to the observed
            entries; a dense one as much as the unmasked fit.
        weights : array-like or sparse, shape (m, n), optional
            Nonnegative entry weights w: the loss becomes sum w_ij d(X_ij, (WH)_ij) (0 =
            missing; a sparse matrix gives the observed entries and their weights).
            Mask, weights and NaN work with the beta-divergence losses and the solvers
            ``"hals"`` (Frobenius) and ``"mu"`` (every beta), and with ``loss="l1"`` and
            ``"scd"`` (weighted medians over the observed entries); a row or column with no
            observed entry keeps its start, with a warning.
        init : str, optional
            Overrides the model's ``init``; ``"warm"`` starts from the current factors.
        W, H : array-like, optional
            Starting (or, with ``fix_W`` / ``fix_H``, fixed) factors; with both given the
            start is exactly (W, H) whatever ``init`` says.
        fix_W, fix_H : bool
            Keep W (resp. H) fixed: the model's current factor or the one given.
        generator : torch.Generator, optional
            Overrides the model's seed for random initialisations.
        keep : {"all", "best"}
            With ``n_replicates``: keep every replicate (W of shape (R, m, r)) or only the
            one of lowest final objective (W of shape (m, r)).
        **fit_options
            ``max_iter``, ``tol``, ``time_limit``, ``check_every``, ``callbacks``,
            ``progress``, ``warn``, ``compile``: see :class:`torchnmf_l1.fit.FitOptions`
            (defaults: the solver's, 200 iterations and tol 1e-4 for HALS and MU).

        Returns
        -------
        FitResult
            Also stored as ``self.result_``. If anything fails, the model keeps the
            factors it had.
        """
        if fix_W and fix_H:
            raise ValueError("fix_W and fix_H cannot both be True: there would be nothing to fit")
        if keep not in ("all", "best"):
            raise ValueError(f"keep must be 'all' or 'best', got {keep!r}")
        R = self.n_replicates
        if keep == "best" and R is None:
            raise ValueError("keep='best' chooses among replicates: create the model with n_replicates=R")
        data, weight_data, init_data = self._prepare(X, mask, weights)
        batch = None
        if R is not None:
            if data.batch is not None:
                raise ValueError(f"n_replicates fits R starts of one X; got a batch of {data.batch} matrices")
            data, init_data, batch = self._replicated(data, init_data, weight_data, R)
        problem = NMFProblem(data, self.loss, self.penalties, batch=batch, update_W=not fix_W, update_H=not fix_H,
                             weights=weight_data)
        with torch.no_grad():
            generators = self._generators(init_data, generator, R)
            W0, H0 = self._initial_factors(init_data, problem, init, W, H, fix_W, fix_H, generators)
            state = FactorState(W0.clone(), H0.clone())
        result, output = self._run_solver("nmf", self.solver, problem, state, self.solver_options, fit_options)
        W_fit, H_fit = output.factors["W"], output.factors["H"]
        if R is not None:
            objectives = result.objective[-1]
            self.replicate_objectives_ = list(objectives)
            self.best_ = min(range(R), key=lambda k: objectives[k])
            if keep == "best":
                W_fit, H_fit = W_fit[self.best_], H_fit[self.best_]
        set_factor_(self, "W", W_fit)
        set_factor_(self, "H", H_fit)
        self.result_ = result
        return result

    def _replicated(self, data: Data, init_data: Data, weight_data: Data | None, R: int):
        """(data, init_data, batch) of R replicates: one shared dense X (batch=R) for the solvers
        that broadcast it, else R copies of X as a batch (the L1 solvers; a sparse X, whose
        products and losses on the support run on the block-diagonal batch)."""
        solver_cls = get_solver(self.solver)
        if solver_cls.takes_replicates and not data.sparse:
            if weight_data is not None and weight_data.sparse:
                raise ValueError("n_replicates with mask= / weights= needs the dense layout (a dense X and dense mask)")
            return data, init_data, R
        if weight_data is not None:
            raise ValueError(f"n_replicates with mask= / weights= needs a dense X and a solver that shares X "
                             f"between the replicates (hals, mu); got solver {self.solver!r}"
                             + (" and a sparse X" if data.sparse else ""))
        copies = _copies(data, R)
        return copies, copies, None

    def fit_transform(self, X, **fit_kwargs) -> Tensor:
        """Fit to X and return H (r x n), detached."""
        self.fit(X, **fit_kwargs)
        return self.H.detach().clone()

    def transform(self, X, *, mask=None, weights=None, **fit_options) -> Tensor:
        """Solve for H (r x n_new) with the model's W fixed; the model is not modified.

        ``mask``, ``weights`` (and NaN entries of X) as in :meth:`fit`: the new columns may
        have missing entries. ``fit_options`` as in :meth:`fit` (no warning is emitted at ``max_iter``).

        Returns
        -------
        Tensor, shape (r, n_new)
        """
        if not self.fitted:
            raise NotFittedError("transform needs a fitted W: call fit first")
        if self.W.dim() != 2:
            raise ValueError("transform works with one W; this model holds a batch of factorizations")
        data, weight_data, init_data = self._prepare(X, mask, weights, allow_batch=False)
        if data.shape[0] != self.W.shape[0]:
            raise ValueError(f"X must have {self.W.shape[0]} rows (the rows of W), got shape {data.shape}")
        problem = NMFProblem(data, self.loss, self.penalties, update_W=False, weights=weight_data)
        with torch.no_grad():
            W = self.W.detach().to(dtype=data.dtype).clone()
            H = random_codes(init_data, self.rank, generator=make_generator(self.seed, data.device))
        fit_options = {"warn": False, **fit_options}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=Warning)
            _, output = self._run_solver("nmf", self.solver, problem, FactorState(W, H), self.solver_options,
                                         fit_options, owner="transform")
        return output.factors["H"]

    def objective(self, X, *, mask=None, weights=None) -> float | list:
        """The objective (loss plus penalties) of the current factors on X (a list for a
        batch); with ``mask``/``weights``/NaN entries, the weighted loss over the observed entries."""
        if not self.fitted:
            raise NotFittedError("objective needs factors: call fit first")
        data, weight_data, _ = self._prepare(X, mask, weights)
        with torch.no_grad():
            problem = NMFProblem(data, self.loss, self.penalties, batch=self.W.shape[0] if self.W.dim() == 3 else None,
                                 weights=weight_data)
            return problem.objective(self.W.to(data.dtype), self.H.to(data.dtype)).tolist()
