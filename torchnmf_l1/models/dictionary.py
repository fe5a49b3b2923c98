r"""Dictionary NMF: X (p x n) ~ D(:, K) V with r atoms K of a known dictionary D (p x d), V >= 0.

.. math:: \min_{|K| = r,\ V \ge 0} \tfrac12 \|X - D(:, K)\, V\|_F^2

D may be several dictionaries :math:`[D_1, \dots, D_N]` with a required number (or
range) of atoms from each (e.g. spectral libraries of vegetation, soils, roofs), or X
itself (self-dictionary). The registered solver works on a relaxed model (see
:mod:`torchnmf_l1.solvers.dictionary`); K is initialised by a separable-NMF method
("d-SPA", "d-SNPA", "d-H2NMF", "d-FGNSR") or at random.

References
----------
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
J. E. Cohen and N. Gillis, "Spectral unmixing with multiple dictionaries", IEEE
Geoscience and Remote Sensing Letters 15(2), 2018.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..data import check_dtype, prepare_data
from ..exceptions import NotFittedError
from ..fit import FitResult, run_fit
from ..init import make_generator
from ..kernels import hals_nnls_, match_atoms
from ..kernels.dictionary import normalize_counts
from ..registry import available_solvers, get_solver
from .base import FactorModule, replace_parameter_
from .separable import SeparableNMF

__all__ = ["DictionaryNMF"]


def _as_dictionary(D, name: str, device, dtype) -> Tensor:
    if not isinstance(D, Tensor):
        try:
            D = torch.as_tensor(D)
        except Exception as exc:  # noqa: BLE001 - re-raised with a clear message
            raise TypeError(f"{name} must be a tensor or an array, got {type(D).__name__}") from exc
    if D.layout != torch.strided:
        raise TypeError(f"{name} must be dense, got layout {D.layout}")
    if D.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix (p x d), got shape {tuple(D.shape)}")
    if D.is_complex() or D.dtype == torch.bool:
        raise TypeError(f"{name} must be real, got dtype {D.dtype}")
    D = D.to(device=device, dtype=dtype if dtype is not None else (D.dtype if D.is_floating_point() else torch.float64))
    if not bool(torch.isfinite(D).all()):
        raise ValueError(f"{name} has non-finite entries")
    minimum = float(D.min()) if D.numel() else 0.0
    if minimum < 0:
        raise ValueError(f"{name} must be nonnegative, got a minimum entry of {minimum:g}")
    if D.numel() and bool((D.sum(dim=0) == 0).any()):
        raise ValueError(f"{name} has an all-zero column (atom {int((D.sum(dim=0) == 0).nonzero()[0])})")
    return D


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
        Registered dictionary solver (``"proximal"``).
    seed : int, optional
        Seed of the generator of ``init="random"`` (and of randomised separable methods).
    device, dtype :
        Where the dictionary and the factors live (dtype defaults to D's float dtype).
    nnls_max_sweeps : int
        HALS sweeps of the final H = argmin ||X - D(:,K) H|| (warm-started).
    **solver_options
        Passed to the solver (``inner_sweeps``, ``delta_factor``, ``growth``,
        ``raise_gap``, ``stop_gap``).

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
        (both in %), ``delta``, ``gap``, the times and, for a separable init,
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

    def __init__(
        self,
        rank: int,
        *,
        dictionary,
        counts=None,
        init: str = "spa",
        init_options: dict[str, Any] | None = None,
        distinct: bool = True,
        solver: str = "proximal",
        seed: int | None = None,
        device=None,
        dtype=None,
        nnls_max_sweeps: int = 500,
        **solver_options,
    ):
        super().__init__()
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        dtype = check_dtype(dtype)
        if isinstance(dictionary, (list, tuple)):
            parts = [_as_dictionary(D, f"dictionary[{i}]", device, dtype) for i, D in enumerate(dictionary)]
            heights = {D.shape[0] for D in parts}
            if len(heights) != 1:
                raise ValueError(f"the dictionaries must have the same height p, got heights {[D.shape[0] for D in parts]}")
            D = torch.cat([P.to(parts[0].dtype) for P in parts], dim=1)
            self.groups = tuple(P.shape[1] for P in parts)
            normalize_counts(self.groups, counts, rank, distinct)  # validates now
        else:
            D = _as_dictionary(dictionary, "dictionary", device, dtype)
            self.groups = None
            if counts is not None:
                raise ValueError("counts is only used with several dictionaries (pass dictionary=[D1, D2, ...])")
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
        if method != "random":  # validates the separable solver's options now (the model is discarded)
            SeparableNMF(rank, method, seed=seed, device=D.device, dtype=D.dtype, **init_options)
        self.solver_cls = get_solver(solver, model="dictionary")
        unknown = sorted(set(solver_options) - set(self.solver_cls.options))
        if unknown:
            raise TypeError(f"solver {solver!r} got unexpected option(s) {unknown}; its options are {sorted(self.solver_cls.options)}")
        self.rank = rank
        self.counts = counts
        self.init = method
        self.init_options = init_options
        self.distinct = distinct
        self.seed = seed
        self.nnls_max_sweeps = nnls_max_sweeps
        self.solver_options = solver_options
        self.register_buffer("dictionary", D)
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=D.device))
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
        """The selected atoms ``dictionary[:, indices]`` (p x r)."""
        if not self.fitted:
            raise NotFittedError("DictionaryNMF is not fitted yet; call fit(X) first")
        return self.dictionary.index_select(1, self.indices)

    def forward(self) -> Tensor:
        """The reconstruction D(:, K) H."""
        return self.W @ self.H

    def _initial(self, X: Tensor, generator) -> tuple[Tensor, Tensor, dict | None]:
        """K0 (matched atoms), H0 = argmin ||X - D(:,K0) H|| and the separable method's report."""
        D = self.dictionary
        H0, report = None, None
        if self.init == "random":
            choice = torch.randperm(D.shape[1], generator=generator, device=D.device)[: self.rank]
            U0 = D.index_select(1, choice.to(D.device))
        else:
            # the plain separable model, so that d-X starts where X ends (same seed, same options)
            start = time.perf_counter()
            plain = SeparableNMF(self.rank, self.init, seed=self.seed, device=D.device, dtype=D.dtype, **self.init_options)
            sep = plain.fit(X)
            U0 = plain.W
            H0 = plain.H.detach()
            report = dict(
                method=self.init,
                options=dict(self.init_options),
                indices=sep.extra["indices"],
                relative_error=sep.extra["relative_error"],
                n_iter=sep.n_iter,
                time=time.perf_counter() - start,
            )
        K0 = match_atoms(U0, D, distinct=self.distinct, groups=self.groups, counts=self.counts)
        if H0 is not None and torch.equal(D.index_select(1, K0), U0):
            return K0, H0.clone(), report  # the atoms are the selected columns (X is its own dictionary)
        if H0 is not None:  # warm start: X(:, k)'s weights rescaled to the norm of its matched atom
            tiny = torch.finfo(D.dtype).tiny
            ratio = torch.linalg.vector_norm(U0, dim=0) / torch.linalg.vector_norm(D.index_select(1, K0), dim=0).clamp_min(tiny)
            H0 = H0 * ratio[:, None]
        return K0, self._nnls(X, K0, H0), report

    def _nnls(self, X: Tensor, K: Tensor, H: Tensor | None = None) -> Tensor:
        W = self.dictionary.index_select(1, K)
        start = hals_init(W, X) if H is None else H
        H = X.new_zeros(K.numel(), X.shape[1])
        H.copy_(start)
        hals_nnls_(H, W.transpose(0, 1) @ X, W.transpose(0, 1) @ W, max_sweeps=self.nnls_max_sweeps, delta=1e-6)
        return H

    def fit(self, X, *, max_iter: int = 200, time_limit: float | None = None, callbacks=(), progress: bool = False) -> FitResult:
        """Fit K and H to X (p x n, dense, nonnegative); returns the :class:`FitResult`.

        The loop stops when the solver's rule is met (``converged`` is then True);
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
        if self.init != "random" and self.rank > min(X.shape):
            raise ValueError(f"init {self.init!r} needs rank <= min(p, n) = {min(X.shape)}, got {self.rank}")
        generator = make_generator(self.seed, D.device)
        start = time.perf_counter()
        K0, H0, separable = self._initial(X, generator)
        t_init = time.perf_counter() - start
        norm_x = torch.linalg.norm(X)
        init_error = float(100 * torch.linalg.norm(X - D.index_select(1, K0) @ H0) / norm_x)
        Dn_scale = torch.linalg.vector_norm(D.index_select(1, K0), dim=0)
        solver = self.solver_cls(
            X, D, K0, H0 * Dn_scale[:, None], distinct=self.distinct, groups=self.groups, counts=self.counts, **self.solver_options
        )
        result = run_fit(
            solver,
            max_iter=max_iter,
            tol=0.0,
            time_limit=time_limit,
            check_every=1,
            callbacks=[self.solver_cls.stop_rule, *callbacks],
            progress=progress,
            warn=False,
        )
        result.converged = bool(solver.done)
        if solver.done:
            result.message = f"atoms stable and U within {solver.config['stop_gap']:g} of them at iteration {result.n_iter}"
        elif max_iter > 0:
            from ..exceptions import ConvergenceWarning

            warnings.warn(f"DictionaryNMF: {result.message} before the atoms settled (gap {solver.gap:.3g})", ConvergenceWarning, stacklevel=2)
        K = solver.K
        scale = torch.linalg.vector_norm(D.index_select(1, K), dim=0).clamp_min(torch.finfo(D.dtype).tiny)
        H = self._nnls(X, K, (solver.V / scale[:, None]).clamp_min(0))
        error = float(100 * torch.linalg.norm(X - D.index_select(1, K) @ H) / norm_x)
        kept_init = error > init_error
        if kept_init:  # never return worse than the start (reported in extra)
            K, H = K0, H0
            error = init_error
        result.extra.update(
            kept_init=kept_init,
            init_indices=K0.tolist(),
            init_relative_error=init_error,
            relative_error=error,
            delta=solver.delta,
            gap=solver.gap,
            time_init=t_init,
            separable=separable,
            time_total=time.perf_counter() - start,
        )
        self.indices = K.to(torch.int64)
        replace_parameter_(self.H, H)
        self.result_ = result
        return result

    def fit_transform(self, X, **fit_kwargs) -> Tensor:
        self.fit(X, **fit_kwargs)
        return self.H.detach()


def hals_init(W: Tensor, X: Tensor) -> Tensor:
    """A nonnegative least-squares starting point: the clipped LS solution, scaled to X."""
    G = W.transpose(0, 1) @ W
    ridge = torch.finfo(W.dtype).eps * torch.diagonal(G).amax() * torch.eye(G.shape[0], device=W.device, dtype=W.dtype)
    return torch.linalg.solve(G + ridge, W.transpose(0, 1) @ X).clamp_min(0)
