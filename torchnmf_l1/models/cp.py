r"""Nonnegative CP decomposition (any order) and its dictionary-constrained variant.

.. math::
    \min_{A_1, \dots, A_N \ge 0} \tfrac12 \|M \ast (T - [\![A_1, \dots, A_N]\!])\|_F^2,
    \qquad [\![A_1, \dots, A_N]\!] = \sum_{q=1}^r a_{1q} \circ \cdots \circ a_{Nq},

with T of shape (I_1, ..., I_N), A_n of shape (I_n, r) and M the mask of observed
entries. ``DictionaryCP`` further requires the columns of one factor A_c to be atoms
of a dictionary D (I_c x d): A_c = D(:, K) up to column scaling (moved to the other
factors). The solvers are registered with ``model="cp"`` and run through tensorly's
PyTorch backend (selected locally), on CPU or CUDA tensors.

References
----------
R. A. Harshman, "Foundations of the PARAFAC procedure", UCLA Working Papers in
Phonetics 16, 1970.
A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix
and tensor factorizations", IEICE Trans. Fundamentals, 2009.
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor, nn

from ..data import check_dtype
from ..exceptions import ConvergenceWarning, NotFittedError
from ..fit import FitResult, run_fit
from ..init import make_generator
from ..kernels.cp import cp_reconstruct
from ..registry import get_solver
from .base import FactorModule
from .dictionary import _as_dictionary

__all__ = ["NonnegativeCP", "DictionaryCP"]


def _as_tensor(T, device, dtype) -> Tensor:
    if hasattr(T, "tensor") and not isinstance(T, (Tensor, np.ndarray)):  # tensorly Bunch
        T = T.tensor
    if not isinstance(T, Tensor):
        try:
            T = torch.as_tensor(np.asarray(T))
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"T must be a tensor or an array, got {type(T).__name__}") from exc
    if T.layout != torch.strided:
        raise TypeError(f"T must be a dense tensor, got layout {T.layout}")
    if T.ndim < 2:
        raise ValueError(f"T must have at least 2 modes, got shape {tuple(T.shape)}")
    if T.is_complex() or T.dtype == torch.bool:
        raise TypeError(f"T must be real, got dtype {T.dtype}")
    if dtype is None:
        dtype = T.dtype if T.dtype in (torch.float32, torch.float64) else torch.float64
    return T.to(device=device, dtype=dtype)


class NonnegativeCP(FactorModule):
    r"""Nonnegative CPD :math:`T \approx [\![A_1, \dots, A_N]\!]` by HALS, as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int
    init : {"random", "svd"}
        Uniform random factors scaled to T's norm, or tensorly's nonnegative SVD init.
    solver : str
        A registered ``model="cp"`` solver (``"hals"``).
    seed : int, optional
    device, dtype :
        Where the factors live; by default T's device and float dtype.
    **solver_options
        ``inner_sweeps`` (HALS sweeps per factor and iteration, 5 as in tensorly).

    Attributes
    ----------
    factors : ParameterList of N Parameters (I_n x r)
    result_ : FitResult

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import NonnegativeCP
    >>> g = torch.Generator().manual_seed(0)
    >>> A, B, C = (torch.rand(s, 3, generator=g, dtype=torch.float64) for s in (8, 9, 10))
    >>> T = torch.einsum("ir,jr,kr->ijk", A, B, C)
    >>> model = NonnegativeCP(3, seed=0)
    >>> _ = model.fit(T, max_iter=2000, tol=1e-12)
    >>> bool(torch.linalg.norm(model() - T) / torch.linalg.norm(T) < 1e-3)
    True
    """

    def __init__(self, rank: int, *, init: str = "random", solver: str = "hals", seed=None, device=None, dtype=None, **solver_options):
        super().__init__()
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if init not in ("random", "svd"):
            raise ValueError(f"init must be 'random' or 'svd', got {init!r}")
        self.solver_cls = get_solver(solver, model="cp")
        unknown = sorted(set(solver_options) - set(self.solver_cls.options))
        if unknown:
            raise TypeError(f"solver {solver!r} got unexpected option(s) {unknown}; its options are {sorted(self.solver_cls.options)}")
        self.rank = rank
        self.init = init
        self.seed = seed
        self.device = None if device is None else torch.device(device)
        self.dtype = check_dtype(dtype)
        self.solver_options = solver_options
        self.factors = nn.ParameterList()
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        return f"rank={self.rank}, init={self.init!r}, shape={tuple(F.shape[0] for F in self.factors)}"

    @property
    def fitted(self) -> bool:
        return len(self.factors) > 0

    def forward(self) -> Tensor:
        """The full reconstructed tensor."""
        if not self.fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(T) first")
        return cp_reconstruct([F for F in self.factors])

    # -- tensorly interop ------------------------------------------------------------
    def to_cptensor(self):
        """The factors as a tensorly ``CPTensor`` (unit weights), torch tensors detached."""
        from tensorly.cp_tensor import CPTensor

        if not self.fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(T) first")
        factors = [F.detach().clone() for F in self.factors]
        return CPTensor((torch.ones(self.rank, device=factors[0].device, dtype=factors[0].dtype), factors))

    @classmethod
    def from_cptensor(cls, cp, **kwargs):
        """A model holding the factors of a tensorly ``CPTensor`` (weights folded into the first factor)."""
        weights, factors = cp
        factors = [torch.as_tensor(np.asarray(F) if not isinstance(F, Tensor) else F) for F in factors]
        rank = factors[0].shape[1]
        model = cls(rank, **kwargs)
        dtype = model.dtype or (factors[0].dtype if factors[0].is_floating_point() else torch.float64)
        device = model.device or factors[0].device
        factors = [F.to(device=device, dtype=dtype) for F in factors]
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights) if not isinstance(weights, Tensor) else weights).to(device=device, dtype=dtype)
            factors[0] = factors[0] * w
        model._set_factors(factors)
        return model

    def _set_factors(self, factors) -> None:
        self.factors = nn.ParameterList([nn.Parameter(F.detach().clone()) for F in factors])

    # -- fitting ---------------------------------------------------------------------
    def _check_initial(self, factors, T: Tensor) -> list:
        if hasattr(factors, "factors") or (isinstance(factors, tuple) and len(factors) == 2 and not isinstance(factors[0], Tensor)):
            weights, factors = factors
            factors = list(factors)
            if weights is not None:
                factors[0] = torch.as_tensor(factors[0]) * torch.as_tensor(weights)
        factors = [torch.as_tensor(F).to(device=T.device, dtype=T.dtype) for F in factors]
        expected = [(s, self.rank) for s in T.shape]
        got = [tuple(F.shape) for F in factors]
        if got != expected:
            raise ValueError(f"initial factors must have shapes {expected}, got {got}")
        if any(bool((F < 0).any()) for F in factors):
            raise ValueError("initial factors must be nonnegative")
        return [F.clone() for F in factors]

    def _initial_factors(self, T: Tensor, mask, generator) -> list:
        if self.init == "svd":
            import tensorly as tl
            from tensorly.decomposition._cp import initialize_cp

            filled = T if mask is None else torch.where(mask, T, T[mask].mean())
            with tl.backend_context("pytorch"):
                weights, factors = initialize_cp(filled, self.rank, init="svd", non_negative=True)
            factors = [F.to(device=T.device, dtype=T.dtype).clone() for F in factors]
            factors[0] = factors[0] * weights
            return factors
        factors = [torch.rand(s, self.rank, generator=generator, device=T.device, dtype=T.dtype) for s in T.shape]
        observed = T if mask is None else torch.where(mask, T, torch.zeros_like(T))
        scale = torch.linalg.vector_norm(observed) / torch.linalg.vector_norm(cp_reconstruct(factors)).clamp_min(torch.finfo(T.dtype).tiny)
        per_mode = scale ** (1.0 / T.ndim)
        return [F * per_mode for F in factors]

    def _prepare(self, T, mask):
        device = self.device if self.device is not None else (T.device if isinstance(T, Tensor) else None)
        T = _as_tensor(T, device, self.dtype)
        if mask is None and bool(torch.isnan(T).any()):
            mask = ~torch.isnan(T)  # NaN marks a missing entry
        if mask is not None:
            mask = torch.as_tensor(mask, device=T.device)
            if mask.dtype != torch.bool:
                raise TypeError(f"mask must be a boolean tensor (True = observed), got dtype {mask.dtype}")
            if mask.shape != T.shape:
                raise ValueError(f"mask must have T's shape {tuple(T.shape)}, got {tuple(mask.shape)}")
            if not bool(mask.any()):
                raise ValueError("mask has no observed entry")
            T = torch.where(mask, T, torch.zeros_like(T))
        if not bool(torch.isfinite(T).all()):
            raise ValueError("T has non-finite entries (mark missing entries with NaN or a mask)")
        minimum = float(T.min())
        if minimum < 0:
            raise ValueError(f"T must be nonnegative, got a minimum entry of {minimum:g}")
        return T, mask

    def _solver_kwargs(self, T) -> dict:
        return {}

    def fit(self, T, *, mask=None, factors=None, max_iter: int = 200, tol: float = 1e-6, check_every: int = 1,
            time_limit=None, callbacks=(), progress: bool = False) -> FitResult:
        """Fit the factors to T (NaN entries or ``mask == False`` are missing).

        ``factors`` (a list of N arrays (I_n x r) or a tensorly ``CPTensor``) gives the
        initial factors. Stops when the relative decrease of the objective between
        checks is below ``tol``. Returns the :class:`FitResult`; on error the model
        keeps its previous factors.
        """
        T, mask = self._prepare(T, mask)
        extra = self._solver_kwargs(T)
        generator = make_generator(self.seed, T.device)
        initial = self._check_initial(factors, T) if factors is not None else self._initial_factors(T, mask, generator)
        solver = self.solver_cls(T, initial, mask, **extra, **self.solver_options)
        result = self._run(solver, max_iter=max_iter, tol=tol, check_every=check_every, time_limit=time_limit,
                           callbacks=callbacks, progress=progress)
        self._set_factors(solver.factors)
        norm = torch.linalg.vector_norm(T)
        result.extra["relative_error"] = float(math.sqrt(2 * result.final_objective) / max(float(norm), torch.finfo(T.dtype).tiny))
        self.result_ = result
        return result

    def _run(self, solver, **kwargs) -> FitResult:
        return run_fit(solver, **kwargs)


class DictionaryCP(NonnegativeCP):
    r"""Nonnegative CPD whose factor ``mode`` has its columns among the atoms of a dictionary.

    Parameters
    ----------
    rank : int
    dictionary : Tensor or array (I_mode x d)
        Nonnegative atoms (columns).
    mode : int
        The constrained mode (negative values count from the end).
    distinct : bool
        Different atoms for different components (needs rank <= d).
    snap : {"hard", "flexible"}
        Snap the factor to its atoms after every update, or pull it towards them with
        a growing proximal weight delta (see :mod:`torchnmf_l1.solvers.cp`).
    atoms_init : {"match", "subspace"}
        How the first atoms are chosen: matched to the factor after the plain-HALS
        warm-up, or, before any iteration, as the atoms whose span best contains the
        mode's unfolding (exhaustive over small subsets, else greedy; see
        :func:`~torchnmf_l1.kernels.subspace_atoms`), the warm-up then fitting the other
        factors around them. "subspace" recovers atoms where the plain CPD is not unique
        (rank above the other dimensions).
    **kwargs
        As :class:`NonnegativeCP`.

    Attributes
    ----------
    indices : buffer of int64 (r,)
        The selected atoms; ``factors[mode]`` equals ``dictionary[:, indices]``.
    """

    def __init__(self, rank: int, *, dictionary, mode: int = 0, distinct: bool = True, snap: str = "hard", atoms_init: str = "match", **kwargs):
        super().__init__(rank, **kwargs)
        D = _as_dictionary(dictionary, "dictionary", self.device, self.dtype)
        if distinct and rank > D.shape[1]:
            raise ValueError(f"rank r = {rank} is larger than the number of atoms d = {D.shape[1]} while distinct=True")
        if snap not in ("hard", "flexible"):
            raise ValueError(f"snap must be 'hard' or 'flexible', got {snap!r}")
        if atoms_init not in ("match", "subspace"):
            raise ValueError(f"atoms_init must be 'match' or 'subspace', got {atoms_init!r}")
        if atoms_init == "subspace" and not distinct:
            raise ValueError("atoms_init='subspace' chooses distinct atoms; it needs distinct=True")
        if isinstance(mode, bool) or not isinstance(mode, int):
            raise TypeError(f"mode must be an integer, got {mode!r}")
        self.mode = mode
        self.distinct = distinct
        self.snap = snap
        self.atoms_init = atoms_init
        self.register_buffer("dictionary", D)
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=D.device))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}, atoms={self.dictionary.shape[1]}, distinct={self.distinct}, snap={self.snap!r}, atoms_init={self.atoms_init!r}"

    def _solver_kwargs(self, T) -> dict:
        if not -T.ndim <= self.mode < T.ndim:
            raise ValueError(f"mode must be in [{-T.ndim}, {T.ndim - 1}] for an order-{T.ndim} tensor, got {self.mode}")
        mode = self.mode % T.ndim
        if self.dictionary.shape[0] != T.shape[mode]:
            raise ValueError(
                f"the dictionary has {self.dictionary.shape[0]} rows but mode {mode} of T has size {T.shape[mode]}; they must match"
            )
        return dict(dictionary=self.dictionary.to(device=T.device, dtype=T.dtype), dict_mode=mode, distinct=self.distinct, snap=self.snap,
                    atoms_init=self.atoms_init)

    def _run(self, solver, *, tol, callbacks, **kwargs) -> FitResult:
        result = run_fit(solver, tol=0.0, callbacks=[solver.stop_rule(tol), *callbacks], warn=False, **kwargs)
        result.converged = bool(solver.done)
        if solver.done:
            result.message = f"atoms stable and relative change < tol={tol:g} at iteration {result.n_iter}"
        elif kwargs.get("max_iter", 0) > 0 and result.message.startswith("reached max_iter"):
            warnings.warn(f"DictionaryCP: {result.message} before the atoms settled", ConvergenceWarning, stacklevel=3)
        # final snap: factor `mode` = D(:, K) exactly, its scale moved to the next factor
        solver.snap_()
        mode = solver.dict_mode
        atoms = solver.Dn.index_select(1, solver.K)
        raw = self.dictionary.to(atoms).index_select(1, solver.K)
        scale = torch.linalg.vector_norm(raw, dim=0)
        solver.factors[mode] = raw
        solver.factors[(mode + 1) % solver.order] = solver.factors[(mode + 1) % solver.order] / scale
        if self.snap == "flexible":  # polish the free factors around the snapped atoms
            for _ in range(10):
                for n in range(solver.order):
                    if n != mode:
                        solver.update_mode(n)
        result.objective.append(float(solver.objective()))
        result.iterations.append(result.n_iter)
        result.times.append(result.times[-1] if result.times else 0.0)
        result.extra["indices"] = solver.K.tolist()
        self.indices = solver.K.clone()
        del atoms
        return result
