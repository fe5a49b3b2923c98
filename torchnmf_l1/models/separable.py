r"""The near-separable NMF model: X (m x n) ~ X(:, K) H with |K| = r and H >= 0.

.. math:: \min_{|K| = r,\; H \ge 0} \|X - X(:, K) H\|_F

K is chosen by a registered separable solver (SPA, SNPA, XRAY, VCA, H2NMF,
FGNSR), optionally on k cluster representatives ("subsampled" variants), which also
fits H on all columns by the shared NNLS; the model holds the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import check_dtype, floating_dtype, prepare_data
from ..exceptions import NotFittedError
from ..fit import FitResult
from ..init import make_generator
from ..params import Choice, Integer, Number, OneOf, Param, Registered, check_params
from ..problem import SeparableProblem
from ..registry import get_solver
from .base import FactorModule, check_device, set_factor_

__all__ = ["SeparableNMF", "SeparableSpec"]


SEPARABLE_PARAMETERS = {
    "rank": Param(None, OneOf(None, Integer(1)), "number r of selected columns (None: FGNSR with mu detects it)",
                  required=True),
    "solver": Param("spa", Registered("separable"), "registered separable solver"),
    "subsample": Param(None, OneOf(None, Integer(1)), "select among the representatives of this many H2NMF clusters"),
    "subsample_scaling": Param(
        "authors", Choice("authors", "sqrt-size", "none"),
        "the representatives of a subsampled fit: 'authors' scales them by sqrt(cluster size) for FGNSR only "
        "(Gillis and Luce's demo), 'sqrt-size' for every method, 'none' for none",
    ),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the generator (VCA, FGNSR's p)"),
    "nnls_max_sweeps": Param(500, Integer(1), "HALS sweeps of the final H-fit"),
    "nnls_delta": Param(1e-6, Number(0), "stopping rule of the final H-fit"),
}


@dataclass(frozen=True)
class SeparableSpec:
    """A validated separable method (solver, rank, subsampling, seed, NNLS settings) that
    builds the :class:`~torchnmf_l1.problem.SeparableProblem` of any X: what
    :class:`SeparableNMF` fits, and the separable initialisation of dictionary NMF."""

    rank: int | None
    solver: str
    subsample: int | None
    seed: int | None
    dtype: torch.dtype | None
    nnls_max_sweeps: int
    nnls_delta: float
    solver_options: dict
    subsample_scaling: str = "authors"

    @classmethod
    def create(cls, rank, solver, *, subsample=None, seed=None, dtype=None, nnls_max_sweeps=500, nnls_delta=1e-6,
               solver_options=None, subsample_scaling="authors") -> "SeparableSpec":
        p = check_params(SEPARABLE_PARAMETERS, dict(rank=rank, solver=solver, subsample=subsample, seed=seed,
                                                     nnls_max_sweeps=nnls_max_sweeps, nnls_delta=nnls_delta,
                                                     subsample_scaling=subsample_scaling), "SeparableNMF")
        solver_cls = get_solver(p["solver"], family="separable")
        if rank is None and not solver_cls.detects_rank:
            raise ValueError(f"solver {solver!r} needs an integer rank, got None")
        solver_options = dict(solver_options or {})
        solver_cls.check_options(solver_options)
        if subsample is not None and rank is not None and subsample < rank:
            raise ValueError(f"subsample must be >= rank={rank}, got {subsample}")
        return cls(rank, p["solver"], subsample, seed, check_dtype(dtype), nnls_max_sweeps, p["nnls_delta"], solver_options,
                   p["subsample_scaling"])

    def problem(self, X, device) -> SeparableProblem:
        """Validate X (dense, nonnegative, rank and subsample in range) and build the problem."""
        if isinstance(X, Tensor) and device is not None and X.device != torch.device(device):
            raise ValueError(f"X is on {X.device} but the model is on {device}; move one of them")
        data = prepare_data(X, device=device, dtype=self.dtype or floating_dtype(X))
        if data.sparse:
            raise ValueError("SeparableNMF needs a dense X (selection methods work on columns); got a sparse X")
        m, n = data.shape
        if self.rank is not None and self.rank > min(m, n):
            raise ValueError(f"rank must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}, got {self.rank}")
        if self.subsample is not None and self.subsample > n:
            raise ValueError(f"subsample must be <= n = {n} (the number of columns), got {self.subsample}")
        return SeparableProblem(
            data.X, self.rank, make_generator(self.seed, data.device), self.subsample, self.nnls_max_sweeps, self.nnls_delta,
            self.subsample_scaling,
        )


class SeparableNMF(FactorModule):
    r"""Near-separable NMF :math:`X \approx X(:, K) H` as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int or None
        Number r of selected columns; None lets a solver that can (FGNSR, with
        ``mu=``) detect it.
    solver : str
        A registered separable solver: ``"spa"``, ``"snpa"``, ``"xray"``, ``"vca"``,
        ``"h2nmf"``, ``"fgnsr"`` (see ``available_solvers("separable")``).
    subsample : int, optional
        Cluster the columns into k groups with H2NMF, keep one representative per
        cluster (its column closest to the cluster's leading singular vector), select
        among the k representatives, then fit H on all columns ("FGNSR-500" is
        ``solver="fgnsr", subsample=500``). Needs rank <= k <= n.
    subsample_scaling : {"authors", "sqrt-size", "none"}
        How the representatives are weighted: ``"authors"`` (default) as Gillis and Luce's
        demo, scaled by the square root of the cluster size for FGNSR only (the other methods
        select among the plain columns); ``"sqrt-size"`` scaled for every method (lower errors
        for SPA, SNPA and XRAY on Urban and Moffett,
        ``experiments/results/separable_subsample_scaling.json``); ``"none"``.
    seed : int, optional
        Seed of the ``torch.Generator`` (VCA's directions, FGNSR's tie-breaking p).
    device, dtype :
        Where and in which precision (float32 or float64) the model works.
    nnls_max_sweeps, nnls_delta :
        The final H-fit (:func:`~torchnmf_l1.kernels.nnls_columns`): at most
        ``nnls_max_sweeps`` HALS sweeps, stopped when the change of H is at most
        ``nnls_delta`` times the first change.
    **solver_options
        Passed to the solver (e.g. ``mu``, ``extract`` for FGNSR).

    Attributes
    ----------
    indices : buffer of int64, shape (r,)
        Selected columns of X, 0-based, in selection order.
    H : Parameter, shape (r, n)
    W : Tensor, shape (m, r)
        X(:, K), kept as a buffer after fit.
    clusters_ : H2NMFClusters or None
        The clustering of a subsampled fit.
    result_ : FitResult

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import SeparableNMF
    >>> W = torch.rand(20, 3, dtype=torch.float64)
    >>> H = torch.cat([torch.eye(3), torch.full((3, 10), 1 / 3)], 1).double()
    >>> model = SeparableNMF(3, solver="spa", dtype=torch.float64)
    >>> _ = model.fit(W @ H)
    >>> sorted(model.indices.tolist())
    [0, 1, 2]

    References
    ----------
    N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020, Chapter 7.
    S. Arora, R. Ge, R. Kannan and A. Moitra, "Computing a nonnegative matrix
    factorization -- provably", STOC 2012.
    """

    hyperparameters = SEPARABLE_PARAMETERS
    rank_axes = {"columns": -1, "H": -2, "indices": 0}
    solver_family = "separable"

    def __init__(
        self,
        rank: int | None,
        solver: str = "spa",
        *,
        subsample: int | None = None,
        subsample_scaling: str = "authors",
        seed: int | None = None,
        device=None,
        dtype=None,
        nnls_max_sweeps: int = 500,
        nnls_delta: float = 1e-6,
        **solver_options,
    ):
        super().__init__()
        check_device(device)
        self.spec = SeparableSpec.create(
            rank, solver, subsample=subsample, seed=seed, dtype=dtype, nnls_max_sweeps=nnls_max_sweeps,
            nnls_delta=nnls_delta, solver_options=solver_options, subsample_scaling=subsample_scaling,
        )
        self.subsample_scaling = self.spec.subsample_scaling
        self.rank = rank
        self.solver = self.spec.solver
        self.subsample = subsample
        self.seed = seed
        self.solver_options = self.spec.solver_options
        r = rank or 0
        like = dict(device=device, dtype=self.spec.dtype or torch.get_default_dtype())
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=device))
        self.register_buffer("columns", torch.empty(0, r, **like))
        self.H = nn.Parameter(torch.empty(r, 0, **like))
        self.clusters_ = None
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        parts = [f"rank={self.rank}", f"solver={self.solver!r}"]
        if self.subsample is not None:
            parts.append(f"subsample={self.subsample}")
            if self.subsample_scaling != "authors":
                parts.append(f"subsample_scaling={self.subsample_scaling!r}")
        return ", ".join(parts)

    @property
    def fitted(self) -> bool:
        return self.indices.numel() > 0

    @property
    def W(self) -> Tensor:
        """X(:, K), shape (m, r)."""
        if not self.fitted:
            raise NotFittedError("this SeparableNMF is not fitted yet: call fit(X)")
        return self.columns

    def forward(self) -> Tensor:
        """The reconstruction X(:, K) H (m x n), differentiable with respect to H."""
        return self.W @ self.H


    def problem(self, X) -> SeparableProblem:
        """The validated problem of fitting X."""
        return self.spec.problem(X, self.H.device)

    def fit(self, X, **fit_options) -> FitResult:
        """Select K and fit H.

        Parameters
        ----------
        X : array-like (numpy or torch, dense), shape (m, n)
            Nonnegative data; columns are the points.
        **fit_options
            For iterative solvers (FGNSR), see :class:`torchnmf_l1.fit.FitOptions`
            (defaults: the solver's, 500 iterations and tol 1e-6 for FGNSR). One-shot
            solvers run one step.

        Returns
        -------
        FitResult
            ``extra`` holds ``indices``, ``relative_error`` (a fraction,
            ||X - X(:, K) H||_F / ||X||_F), the seconds spent clustering, selecting and
            fitting H, and for FGNSR ``diagonal`` (diag of the relaxation's solution, in
            the selection space).
        """
        problem = self.problem(X)
        result, output = self._run_solver("separable", self.solver, problem, None, self.solver_options, fit_options)
        # commit only now: an error above leaves the previous fit untouched
        factors = output.factors
        self.indices = factors["indices"].to(torch.int64)
        self.columns = factors["W"]
        set_factor_(self, "H", factors["H"])
        self.clusters_ = factors.get("clusters")
        self.result_ = result
        return result

    def fit_transform(self, X, **kwargs) -> Tensor:
        """Fit and return H (r x n)."""
        self.fit(X, **kwargs)
        return self.H.detach()
