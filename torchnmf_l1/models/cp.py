r"""Nonnegative CP decomposition (any order) and its dictionary-constrained variant.

.. math::
    \min_{A_1, \dots, A_N \ge 0} \tfrac12 \|M \ast (T - [\![A_1, \dots, A_N]\!])\|_F^2,
    \qquad [\![A_1, \dots, A_N]\!] = \sum_{q=1}^r a_{1q} \circ \cdots \circ a_{Nq},

with T of shape (I_1, ..., I_N), A_n of shape (I_n, r) and M the mask of observed
entries. ``DictionaryCP`` further requires the columns of one factor A_c to be atoms
of a dictionary D (I_c x d): A_c = D(:, K) up to column scaling (moved to the other
factors). The solvers are registered in family ``"cp"``; their products are the einsum
kernels of :mod:`torchnmf_l1.kernels.cp` (CPU or CUDA), tensorly serves the ``"svd"``
initialisation and the ``CPTensor`` interchange (its PyTorch backend selected locally).
A batch of B tensors (a (B, I_1, ..., I_N) stack) is fitted as B problems at once.

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

import numpy as np
import torch
from torch import Tensor, nn

from ..data import check_dtype, prepare_dictionaries, prepare_tensor
from ..exceptions import NotFittedError
from ..fit import FitResult
from ..init import initialize_cp, make_generator
from ..kernels.cp import cp_reconstruct
from ..missing import prepare_cp_weights
from ..params import Anything, Boolean, Choice, Integer, OneOf, Param, Registered, check_params
from ..problem import CPProblem, CPState
from ..registry import get_solver
from .base import FactorModule, check_device

CP_PARAMETERS = {
    "rank": Param(None, Integer(1), "number r of rank-one components", required=True),
    "init": Param("random", Registered("cp", init=True), "registered CP initialisation"),
    "solver": Param("hals", Registered("cp"), "registered CP solver"),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the random initialisation"),
}
DICTIONARY_CP_PARAMETERS = {
    **CP_PARAMETERS,
    "dictionary": Param(None, Anything("an I_mode x d nonnegative matrix, or a list of them"),
                        "the atoms of the constrained mode", required=True),
    "counts": Param(None, Anything("one int or (lo, hi) per dictionary, or None"), "atoms taken from each dictionary"),
    "mode": Param(0, Integer(), "the constrained mode (negative values count from the end)"),
    "distinct": Param(True, Boolean(), "different atoms for different components"),
    "snap": Param("hard", Choice("hard", "flexible"), "snap to the atoms, or pull towards them"),
    "atoms_init": Param("match", Choice("match", "subspace"), "how the first atoms are chosen"),
}

__all__ = ["NonnegativeCP", "DictionaryCP"]


def _as_factor(F, device, dtype) -> Tensor:
    if not isinstance(F, Tensor):
        F = torch.from_numpy(np.ascontiguousarray(np.asarray(F)))
    return F.to(device=device, dtype=dtype)


class NonnegativeCP(FactorModule):
    r"""Nonnegative CPD :math:`T \approx [\![A_1, \dots, A_N]\!]` by HALS, as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int
    init : {"random", "svd"}
        Uniform random factors scaled to T's norm, or tensorly's nonnegative SVD init.
    solver : str
        A registered ``family="cp"`` solver (``"hals"``).
    seed : int, optional
    device, dtype :
        Where the factors live; by default T's device and float dtype.
    **solver_options
        ``inner_sweeps`` (HALS sweeps per factor and iteration, 5 as in tensorly), checked now.

    Attributes
    ----------
    factors : ParameterList of N Parameters (I_n x r), or (B, I_n, r) after a batch
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
    >>> bool(torch.linalg.norm(model.reconstruct() - T) / torch.linalg.norm(T) < 1e-3)
    True
    """

    hyperparameters = CP_PARAMETERS
    solver_family = "cp"

    def __init__(self, rank: int, *, init: str = "random", solver: str = "hals", seed=None, device=None, dtype=None, **solver_options):
        super().__init__()
        check_params(CP_PARAMETERS, dict(rank=rank, init=init, solver=solver, seed=seed), type(self).__name__)
        check_device(device)
        self.solver = solver.lower()
        get_solver(self.solver, family="cp").check_options(solver_options)
        self.rank = rank
        self.init = init.lower()
        self.seed = seed
        self.device = None if device is None else torch.device(device)
        self.dtype = check_dtype(dtype)
        self.solver_options = dict(solver_options)
        self.factors = nn.ParameterList()
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        return f"rank={self.rank}, init={self.init!r}, shape={tuple(F.shape[-2] for F in self.factors)}"

    @property
    def fitted(self) -> bool:
        return len(self.factors) > 0

    def forward(self) -> Tensor:
        """The full reconstructed tensor (a stack of them after a batch)."""
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
        first = factors[0] if isinstance(factors[0], Tensor) else torch.from_numpy(np.asarray(factors[0]))
        model = cls(first.shape[1], **kwargs)
        dtype = model.dtype or (first.dtype if first.is_floating_point() else torch.float64)
        device = model.device or first.device
        factors = [_as_factor(F, device, dtype) for F in factors]
        if weights is not None:
            factors[0] = factors[0] * _as_factor(weights, device, dtype)
        model._set_factors(factors)
        return model

    def _set_factors(self, factors) -> None:
        self.factors = nn.ParameterList([nn.Parameter(F.detach().clone()) for F in factors])

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # a fresh model has no factors yet: create them from the keys "factors.0", "factors.1", ...
        keys = sorted((k for k in state_dict if k.startswith(prefix + "factors.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        ranks = {int(state_dict[k].shape[-1]) for k in keys}
        if ranks and ranks != {self.rank}:
            error_msgs.append(f"rank mismatch for {prefix}factors: the state has rank {sorted(ranks)}, this "
                              f"{type(self).__name__} has rank {self.rank}")
            return
        if keys and len(self.factors) != len(keys):
            like = dict(device=self.device, dtype=self.dtype or state_dict[keys[0]].dtype)
            self._set_factors([torch.empty_like(state_dict[k], **like) for k in keys])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    # -- fitting ---------------------------------------------------------------------
    def _check_initial(self, factors, T: Tensor, batch) -> list:
        if hasattr(factors, "factors") or (isinstance(factors, tuple) and len(factors) == 2 and not isinstance(factors[0], Tensor)):
            weights, factors = factors
            factors = list(factors)
            if weights is not None:
                factors[0] = _as_factor(factors[0], T.device, T.dtype) * _as_factor(weights, T.device, T.dtype)
        factors = [_as_factor(F, T.device, T.dtype) for F in factors]
        lead = () if batch is None else (batch,)
        expected = [lead + (s, self.rank) for s in T.shape[len(lead):]]
        got = [tuple(F.shape) for F in factors]
        if got != expected:
            raise ValueError(f"initial factors must have shapes {expected}, got {got}")
        if any(not bool(torch.isfinite(F).all()) or bool((F < 0).any()) for F in factors):
            raise ValueError("initial factors must be finite and nonnegative")
        return [F.clone() for F in factors]

    def _problem(self, T, mask, batch, weights=None) -> CPProblem:
        return CPProblem(T, mask, batch, weights=weights)

    def fit(self, T, *, mask=None, weights=None, factors=None, batch: bool = False, **fit_options) -> FitResult:
        r"""Fit the factors to T (NaN entries or ``mask == False`` are missing).

        Parameters
        ----------
        T : array-like of order N >= 2
            Nonnegative data; with ``batch=True`` a stack (B, I_1, ..., I_N) of B tensors
            fitted at once (each from its own start).
        mask : bool array like T, optional
            True where T is observed.
        weights : array like T, optional
            Nonnegative entry weights (0 = missing): the loss becomes
            :math:`\tfrac12 \sum w (T - [\![\cdot]\!])^2` (fitted by Kiers' majorization).
        factors : list of N arrays (I_n x r), or a tensorly ``CPTensor``, optional
            The initial factors.
        **fit_options
            See :class:`torchnmf_l1.fit.FitOptions` (defaults: 200 iterations, tol 1e-6,
            a check every iteration).

        Returns
        -------
        FitResult
            ``extra["relative_error"]``: :math:`\|M \ast (T - [\![\cdot]\!])\|_F / \|M \ast T\|_F`.
            On error the model keeps its previous factors.
        """
        device = self.device if self.device is not None else (T.device if isinstance(T, Tensor) else None)
        T, mask = prepare_tensor(T, mask, device=device, dtype=self.dtype, batch=batch)
        if weights is not None:
            weights = prepare_cp_weights(weights, T, mask)
            mask = weights > 0
        B = T.shape[0] if batch else None
        problem = self._problem(T, mask, B, weights)
        if factors is not None:
            initial = self._check_initial(factors, T, B)
        else:
            generators = make_generator(self.seed, T.device) if B is None else [make_generator(self.seed, T.device) for _ in range(B)]
            initial = initialize_cp(T, mask, self.rank, self.init, generator=generators, batch=B)
        result, output = self._run_solver("cp", self.solver, problem, CPState(initial), self.solver_options, fit_options)
        self._commit(output)
        self.result_ = result
        return result

    def _commit(self, output) -> None:
        self._set_factors(output.factors["factors"])


class DictionaryCP(NonnegativeCP):
    r"""Nonnegative CPD whose factor ``mode`` has its columns among the atoms of a dictionary.

    Parameters
    ----------
    rank : int
    dictionary : Tensor or array (I_mode x d), or a list of them
        Nonnegative atoms (columns); several dictionaries (same height) side by side with
        ``counts`` (Cohen and Gillis, "Spectral unmixing with multiple dictionaries", 2018).
    counts : list of int or (lo, hi), optional
        With several dictionaries: how many atoms to take from each (an exact number or an
        inclusive range), as for :class:`~torchnmf_l1.DictionaryNMF`.
    mode : int
        The constrained mode (negative values count from the end).
    distinct : bool
        Different atoms for different components (needs rank <= d).
    snap : {"hard", "flexible"}
        Snap the factor to its atoms after every update, or pull it towards them with
        a growing proximal weight delta (see :mod:`torchnmf_l1.solvers.cp`); with
        ``delta=lambda`` (a solver option) the weight is fixed at :math:`\lambda\|T\|_F^2`,
        and ``result="relaxed"`` returns the relaxed factor (unit-norm columns near the
        atoms) instead of snapping it to ``dictionary[:, indices]`` at the end.
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
        The selected atoms; ``factors[mode]`` equals ``dictionary[:, indices]`` (unless
        ``result="relaxed"``: then the nearest atoms of the relaxed factor).
    """

    hyperparameters = DICTIONARY_CP_PARAMETERS

    def __init__(self, rank: int, *, dictionary, counts=None, mode: int = 0, distinct: bool = True, snap: str = "hard",
                 atoms_init: str = "match", **kwargs):
        check_params({k: v for k, v in DICTIONARY_CP_PARAMETERS.items() if k not in CP_PARAMETERS or k == "rank"},
                     dict(rank=rank, dictionary=dictionary, counts=counts, mode=mode, distinct=distinct, snap=snap,
                          atoms_init=atoms_init), "DictionaryCP")
        super().__init__(rank, **kwargs)
        D, self.groups = prepare_dictionaries(dictionary, counts, rank, distinct, self.device, self.dtype)
        if self.groups is not None and atoms_init == "subspace":
            raise ValueError("atoms_init='subspace' takes one dictionary; with several use atoms_init='match'")
        self.counts = None if counts is None else tuple(counts)
        if distinct and rank > D.shape[1]:
            raise ValueError(f"rank r = {rank} is larger than the number of atoms d = {D.shape[1]} while distinct=True")
        if atoms_init == "subspace" and not distinct:
            raise ValueError("atoms_init='subspace' chooses distinct atoms; it needs distinct=True")
        if self.solver_options.get("result") == "relaxed" and snap != "flexible":
            raise ValueError(f"result='relaxed' keeps the relaxed factor of snap='flexible', got snap={snap!r}")
        self.mode = mode
        self.distinct = distinct
        self.snap = snap
        self.atoms_init = atoms_init
        self.register_buffer("dictionary", D)
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=D.device))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}, atoms={self.dictionary.shape[1]}, distinct={self.distinct}, snap={self.snap!r}, atoms_init={self.atoms_init!r}"

    def _problem(self, T, mask, batch, weights=None) -> CPProblem:
        if batch is not None:
            raise ValueError("DictionaryCP fits one tensor at a time; got batch=True")
        if not -T.ndim <= self.mode < T.ndim:
            raise ValueError(f"mode must be in [{-T.ndim}, {T.ndim - 1}] for an order-{T.ndim} tensor, got {self.mode}")
        mode = self.mode % T.ndim
        if self.dictionary.shape[0] != T.shape[mode]:
            raise ValueError(
                f"the dictionary has {self.dictionary.shape[0]} rows but mode {mode} of T has size {T.shape[mode]}; they must match"
            )
        return CPProblem(T, mask, None, self.dictionary.to(device=T.device, dtype=T.dtype), mode, self.distinct, self.snap,
                         self.atoms_init, weights, self.groups, self.counts)

    def _commit(self, output) -> None:
        super()._commit(output)
        self.indices = output.factors["indices"].clone()
