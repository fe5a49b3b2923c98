r"""The near-separable NMF model: X (m x n) ~ X(:, K) H with |K| = r and H >= 0.

.. math:: \min_{|K| = r,\; H \ge 0} \|X - X(:, K) H\|_F

K is chosen by a registered separable solver (SPA, SNPA, XRAY, VCA, H2NMF,
FGNSR), optionally on k cluster representatives ("subsampled" variants), and H is
then fitted on all columns by the shared HALS NNLS.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from ..data import check_dtype, prepare_data
from ..exceptions import NotFittedError
from ..fit import FitResult, run_fit
from ..init import make_generator
from ..kernels import h2nmf_clustering, hals_nnls_
from ..registry import get_solver
from .base import FactorModule, replace_parameter_

__all__ = ["SeparableNMF"]


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
        cluster scaled by the square root of its size, select among the k
        representatives, then fit H on all columns ("FGNSR-500" is
        ``solver="fgnsr", subsample=500``). Needs rank <= k <= n.
    seed : int, optional
        Seed of the ``torch.Generator`` (VCA's directions, FGNSR's tie-breaking p).
    device, dtype :
        Where and in which precision (float32 or float64) the model works.
    nnls_max_sweeps, nnls_delta :
        The final H-fit: warm-started HALS (:func:`~torchnmf_l1.kernels.hals_nnls_`),
        at most ``nnls_max_sweeps`` sweeps, stopped when the change of H is at most
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

    def __init__(
        self,
        rank: int | None,
        solver: str = "spa",
        *,
        subsample: int | None = None,
        seed: int | None = None,
        device=None,
        dtype=None,
        nnls_max_sweeps: int = 500,
        nnls_delta: float = 1e-6,
        **solver_options,
    ):
        super().__init__()
        self.solver_cls = get_solver(solver, model="separable")
        if rank is None:
            if not self.solver_cls.detects_rank:
                raise ValueError(f"solver {solver!r} needs an integer rank, got None")
        elif isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"rank must be a positive integer or None, got {rank!r}")
        elif rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        unknown = sorted(set(solver_options) - set(self.solver_cls.options))
        if unknown:
            raise TypeError(
                f"solver {solver!r} got unexpected option(s) {unknown}; its options are {sorted(self.solver_cls.options)}"
            )
        if subsample is not None:
            if isinstance(subsample, bool) or not isinstance(subsample, int):
                raise TypeError(f"subsample must be an integer or None, got {subsample!r}")
            if rank is not None and subsample < rank:
                raise ValueError(f"subsample must be >= rank={rank}, got {subsample}")
        if seed is not None:
            make_generator(seed, "cpu")
        self.rank = rank
        self.solver = solver.lower()
        self.subsample = subsample
        self.seed = seed
        self.nnls_max_sweeps = nnls_max_sweeps
        self.nnls_delta = nnls_delta
        self.solver_options = dict(solver_options)
        dtype = check_dtype(dtype) or torch.get_default_dtype()
        r = rank or 0
        self.register_buffer("indices", torch.empty(0, dtype=torch.int64, device=device))
        self.register_buffer("columns", torch.empty(0, r, device=device, dtype=dtype))
        self.H = nn.Parameter(torch.empty(r, 0, device=device, dtype=dtype))
        self.clusters_ = None
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        parts = [f"rank={self.rank}", f"solver={self.solver!r}"]
        if self.subsample is not None:
            parts.append(f"subsample={self.subsample}")
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

    reconstruct = forward

    def fit(
        self,
        X,
        *,
        max_iter: int | None = None,
        tol: float | None = None,
        time_limit: float | None = None,
        check_every: int = 10,
        callbacks=(),
        progress: bool = False,
    ) -> FitResult:
        """Select K and fit H.

        Parameters
        ----------
        X : array-like (numpy or torch, dense), shape (m, n)
            Nonnegative data; columns are the points.
        max_iter, tol, time_limit, check_every, callbacks, progress :
            For iterative solvers (FGNSR), see :func:`torchnmf_l1.fit.run_fit`;
            defaults are the solver's (``default_max_iter``, ``default_tol``).
            One-shot solvers run one step.

        Returns
        -------
        FitResult
            ``extra`` holds ``indices``, ``relative_error`` (in %), the NNLS sweeps,
            the seconds spent clustering, selecting and fitting H, and for FGNSR
            ``diagonal`` (diag of the relaxation's solution, in the selection space).
        """
        device, dtype = self.H.device, self.H.dtype
        if isinstance(X, Tensor) and X.device != device:
            raise ValueError(f"X is on {X.device} but the model is on {device}; move one of them")
        data = prepare_data(X, device=device, dtype=dtype)
        if data.sparse:
            raise ValueError("SeparableNMF needs a dense X (selection methods work on columns); got a sparse X")
        X = data.X
        m, n = X.shape
        if self.rank is not None and self.rank > min(m, n):
            raise ValueError(f"rank must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}, got {self.rank}")
        if self.subsample is not None and self.subsample > n:
            raise ValueError(f"subsample must be <= n = {n} (the number of columns), got {self.subsample}")
        generator = make_generator(self.seed, device)
        times = {}
        start = time.perf_counter()
        clusters, Xsel = None, X
        if self.subsample is not None:
            clusters = h2nmf_clustering(X, self.subsample)
            reps = clusters.representatives
            if self.rank is not None and reps.numel() < self.rank:
                raise ValueError(f"subsample={self.subsample} gave only {reps.numel()} clusters, fewer than rank={self.rank}")
            Xsel = X.index_select(1, reps) * clusters.sizes.to(dtype).sqrt()
        times["cluster"] = time.perf_counter() - start
        solver = self.solver_cls(Xsel, self.rank, generator=generator, **self.solver_options)
        one_shot = self.solver_cls.one_shot
        result = run_fit(
            solver,
            max_iter=1 if one_shot else (self.solver_cls.default_max_iter if max_iter is None else max_iter),
            tol=0.0 if one_shot else (self.solver_cls.default_tol if tol is None else tol),
            time_limit=time_limit,
            check_every=check_every,
            callbacks=callbacks,
            progress=progress,
        )
        local = solver.finish()
        indices = clusters.representatives[local] if clusters is not None else local
        times["select"] = time.perf_counter() - start - times["cluster"]
        W = X.index_select(1, indices)
        H = X.new_zeros(indices.numel(), n)
        if clusters is None and solver.H is not None and solver.H.shape == H.shape:
            H.copy_(solver.H.clamp_min(0))
        sweeps = hals_nnls_(
            H, W.transpose(0, 1) @ X, W.transpose(0, 1) @ W, max_sweeps=self.nnls_max_sweeps, delta=self.nnls_delta
        )
        times["nnls"] = time.perf_counter() - start - times["cluster"] - times["select"]
        rel = 100 * torch.linalg.norm(X - W @ H) / torch.linalg.norm(X)
        # commit only now: an error above leaves the previous fit untouched
        self.indices = indices.to(torch.int64)
        self.columns = W
        replace_parameter_(self.H, H)
        self.clusters_ = clusters
        result.extra.update(
            indices=self.indices.tolist(),
            relative_error=float(rel),
            nnls_sweeps=sweeps,
            seconds=times,
        )
        solution = getattr(solver, "solution", None)
        if solution is not None:  # FGNSR: keep diag(X), not the n x n matrix
            result.extra["diagonal"] = torch.diagonal(solution).clone()
        self.result_ = result
        return result

    def fit_transform(self, X, **kwargs) -> Tensor:
        """Fit and return H (r x n)."""
        self.fit(X, **kwargs)
        return self.H.detach()
