r"""Dictionary NMF: X (p x n) ~ D(:, K) V with r atoms K of a known dictionary D (p x d), V >= 0.

.. math:: \min_{|K| = r,\ V \ge 0} \tfrac12 \|X - D(:, K)\, V\|_F^2

D may be several dictionaries :math:`[D_1, \dots, D_N]` with a required number (or
range) of atoms from each (e.g. spectral libraries of vegetation, soils, roofs), or X
itself (self-dictionary). The registered solver (family ``"dictionary"``) works on a relaxed model (see
:mod:`torchnmf_l1.solvers.dictionary`); K is initialised by a separable-NMF method
("d-SPA", "d-SNPA", "d-H2NMF", "d-FGNSR") or at random. The model holds D, K and H.

References
----------
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
J. E. Cohen and N. Gillis, "Spectral unmixing with multiple dictionaries", IEEE
Geoscience and Remote Sensing Letters 15(2), 2018.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..data import check_dtype, prepare_data, prepare_dictionaries
from ..exceptions import NotFittedError
from ..fit import FitResult
from ..init import make_generator
from ..params import Anything, Boolean, Integer, OneOf, Param, Registered, check_params
from ..problem import DictionaryProblem
from ..registry import available_solvers, get_solver
from .base import FactorModule, check_device, set_factor_
from .separable import SeparableSpec

__all__ = ["DictionaryNMF"]

DICTIONARY_PARAMETERS = {
    "rank": Param(None, Integer(1), "number r of atoms", required=True),
    "dictionary": Param(None, Anything("a p x d nonnegative matrix, or a list of them"), "the atoms (columns)",
                        required=True),
    "counts": Param(None, Anything("one int or (lo, hi) per dictionary, or None"), "atoms taken from each dictionary"),
    "init": Param("spa", Anything("'random' or a registered separable solver (a 'd-' prefix is accepted)"),
                  "the first atoms"),
    "init_options": Param(None, Anything("a dict of SeparableNMF options, or None"), "options of a separable init"),
    "distinct": Param(True, Boolean(), "the r atoms must be different"),
    "solver": Param("nmfdico", Registered("dictionary"), "registered dictionary solver"),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the random choices"),
    "nnls_max_sweeps": Param(500, Integer(1), "HALS sweeps of the H-fits"),
}


class DictionaryNMF(FactorModule):
    r"""Dictionary NMF :math:`X \approx D(:, K) H` as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int
        Number r of atoms.
    dictionary : Tensor or array (p x d), or a list of them
        The dictionary D (nonnegative, columns are atoms), or several dictionaries
        stacked side by side with ``counts``.
    counts : list of int or (lo, hi), optional
        With several dictionaries: how many atoms to take from each (an exact
        number or an inclusive range).
    init : str
        ``"random"`` (r random atoms) or the name of a registered separable-NMF
        solver (``available_solvers("separable")``: ``"spa"``, ``"snpa"``, ``"h2nmf"``,
        ``"fgnsr"``, ...; a ``"d-"`` prefix is accepted, so ``"d-SNPA"`` is ``"snpa"``).
        A separable init runs :class:`~torchnmf_l1.SeparableNMF` with that solver (and
        ``seed``, ``init_options``) on X, so d-X starts from exactly the columns the
        plain method X picks; each column is then matched to its best atom of D.
    init_options : dict, optional
        Keyword arguments of :class:`~torchnmf_l1.SeparableNMF` for the separable
        init: ``subsample`` (e.g. ``{"subsample": 500}`` for d-FGNSR-500),
        ``nnls_max_sweeps``, ``nnls_delta`` and the solver's own options.
    distinct : bool
        The r atoms must be different (r <= d).
    solver : str
        Registered dictionary solver: ``"nmfdico"`` (the authors' NMFdico, the default: a
        lower error than ``"proximal"`` from the same start in 6 of 8 Urban cases,
        ``experiments/dictionary_variants.py``) or ``"proximal"`` (this package's variant,
        with the fixed ``delta`` and ``result="relaxed"`` options).
    seed : int, optional
        Seed of the generator of ``init="random"`` (and of randomised separable methods).
    device, dtype :
        Where the dictionary and the factors live (dtype defaults to D's float dtype).
    nnls_max_sweeps : int
        HALS sweeps of the final H = argmin ||X - D(:,K) H|| (warm-started).
    **solver_options
        Passed to the solver and checked by it now (``inner_sweeps``, ``delta_factor``,
        ``growth``, ``raise_gap``, ``stop_gap``; nmfdico: ``warmup``, ``stable_iters``;
        proximal: ``delta=lambda`` for a fixed weight
        :math:`\lambda\|X\|_F^2` of the proximal term instead of the growing schedule, and
        ``result="relaxed"`` to keep the relaxed factor U as W instead of D(:, K)).

    Attributes
    ----------
    dictionary : buffer, shape (p, d)
    indices : buffer of int64, shape (r,)
        K, the selected atoms.
    H : Parameter, shape (r, n)
        The weights (V of the relaxed model).
    W : Tensor, shape (p, r)
        ``dictionary[:, indices]`` (read only).
    result_ : FitResult
        ``extra`` holds ``init_indices``, ``init_relative_error``, ``relative_error``
        (both fractions), ``delta``, ``gap``, the times and, for a separable init,
        ``separable`` (the plain method's indices, relative error, iterations and time).

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import DictionaryNMF
    >>> g = torch.Generator().manual_seed(0)
    >>> D = torch.rand(30, 12, generator=g, dtype=torch.float64)
    >>> X = D[:, [2, 5, 7]] @ torch.rand(3, 40, generator=g, dtype=torch.float64)
    >>> model = DictionaryNMF(3, dictionary=D, init="random", seed=0)
    >>> _ = model.fit(X)
    >>> sorted(model.indices.tolist())
    [2, 5, 7]
    """

    hyperparameters = DICTIONARY_PARAMETERS
    rank_axes = {"H": -2, "indices": 0}
    solver_family = "dictionary"

    def __init__(
        self,
        rank: int,
        *,
        dictionary,
        counts=None,
        init: str = "spa",
        init_options: dict[str, Any] | None = None,
        distinct: bool = True,
        solver: str = "nmfdico",
        seed: int | None = None,
        device=None,
        dtype=None,
        nnls_max_sweeps: int = 500,
        **solver_options,
    ):
        super().__init__()
        check_params(self.hyperparameters, dict(rank=rank, dictionary=dictionary, counts=counts, init=init,
                                           init_options=init_options, distinct=distinct, solver=solver, seed=seed,
                                           nnls_max_sweeps=nnls_max_sweeps), "DictionaryNMF")
        check_device(device)
        dtype = check_dtype(dtype)
        D, self.groups = prepare_dictionaries(dictionary, counts, rank, distinct, device, dtype)
        if distinct and rank > D.shape[1]:
            raise ValueError(
                f"rank r = {rank} is larger than the number of atoms d = {D.shape[1]} while distinct=True"
            )
        if not isinstance(init, str):
            raise TypeError(f"init must be a string, got {type(init).__name__} {init!r}")
        method = init.lower().removeprefix("d-")
        separable = available_solvers("separable")
        if method != "random" and method not in separable:
            raise ValueError(
                f"init must be 'random' or a registered separable method {separable} "
                f"(a 'd-' prefix is accepted), got {init!r}"
            )
        if init_options is not None and not isinstance(init_options, dict):
            raise TypeError(f"init_options must be a dict or None, got {type(init_options).__name__}")
        init_options = dict(init_options or {})
        if method == "random" and init_options:
            raise ValueError(f"init_options are only used by a separable init, got {sorted(init_options)} with init='random'")
        # the separable method of the init: validated now, builds its problem at fit
        self.init_spec = None
        if method != "random":
            sep_options = {k: init_options[k] for k in ("subsample", "subsample_scaling", "nnls_max_sweeps", "nnls_delta")
                           if k in init_options}
            init_solver_options = {k: v for k, v in init_options.items() if k not in sep_options}
            self.init_spec = SeparableSpec.create(
                rank, method, seed=seed, dtype=D.dtype, solver_options=init_solver_options, **sep_options
            )
        self.solver = solver.lower()
        get_solver(self.solver, family="dictionary").check_options(solver_options)
        self.rank = rank
        self.counts = counts
        self.init = method
        self.init_options = init_options
        self.distinct = distinct
        self.seed = seed
        self.nnls_max_sweeps = nnls_max_sweeps
        self.solver_options = dict(solver_options)
        self.register_buffer("dictionary", D)
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=D.device))
        self.register_buffer("relaxed_W", None)
        self.H = nn.Parameter(torch.empty(rank, 0, device=D.device, dtype=D.dtype))
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        p, d = self.dictionary.shape
        return f"rank={self.rank}, dictionary=({p}, {d}), groups={self.groups}, init={self.init!r}, distinct={self.distinct}"

    @property
    def fitted(self) -> bool:
        return self.indices.numel() > 0

    @property
    def W(self) -> Tensor:
        """The selected atoms ``dictionary[:, indices]`` (p x r); with ``result="relaxed"`` the
        relaxed factor U (unit-norm columns near those atoms)."""
        if not self.fitted:
            raise NotFittedError("DictionaryNMF is not fitted yet; call fit(X) first")
        if self.relaxed_W is not None:
            return self.relaxed_W
        return self.dictionary.index_select(1, self.indices)

    def forward(self) -> Tensor:
        """The reconstruction D(:, K) H."""
        return self.W @ self.H

    def fit(self, X, **fit_options) -> FitResult:
        """Fit K and H to X (p x n, dense, nonnegative); returns the :class:`FitResult`.

        ``fit_options`` as in :class:`torchnmf_l1.fit.FitOptions` (default: at most 200
        iterations, each followed by a check: the solver's rule, K stable and U near
        D(:, K), replaces ``tol``); ``converged`` is True when that rule was met.
        ``result_.extra`` compares the fit with the initial atoms.
        """
        D = self.dictionary
        data = prepare_data(X, device=D.device, dtype=D.dtype)
        if data.sparse:
            raise ValueError("DictionaryNMF needs a dense X, got a sparse matrix")
        X = data.X
        if X.shape[0] != D.shape[0]:
            raise ValueError(
                f"the dictionary has {D.shape[0]} rows but X has {X.shape[0]} rows; they must match (p x d and p x n)"
            )
        if self.init_spec is not None and self.rank > min(X.shape):
            raise ValueError(f"init {self.init!r} needs rank <= min(p, n) = {min(X.shape)}, got {self.rank}")
        problem = DictionaryProblem(
            X, D, self.rank, self.distinct, self.groups, None if self.counts is None else tuple(self.counts),
            self.init,
            None if self.init_spec is None else self.init_spec.problem(X, D.device),
            None if self.init_spec is None else self.init_spec.solver_options,
            make_generator(self.seed, D.device),
            self.nnls_max_sweeps,
        )
        result, output = self._run_solver("dictionary", self.solver, problem, None, self.solver_options, fit_options)
        self.indices = output.factors["indices"].to(torch.int64)
        self.relaxed_W = output.factors.get("U")
        set_factor_(self, "H", output.factors["H"])
        self.result_ = result
        return result

    def fit_transform(self, X, **fit_kwargs) -> Tensor:
        self.fit(X, **fit_kwargs)
        return self.H.detach()
