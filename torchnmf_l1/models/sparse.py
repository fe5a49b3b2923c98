r"""Low-rank sparse component analysis (LRSCA): X (m x n) ~ W H with at most k nonzeros per column of H.

.. math:: \min_{W \in \mathbb{R}^{m \times r}_{(+)},\ H \in \mathbb{R}^{r \times n}_{(+)}}
   \tfrac12 \|X - WH\|_F^2 \quad\text{s.t.}\quad \|H(:, j)\|_0 \le k \ \ \forall j

In spectral unmixing each pixel is a mixture of at most k of the r materials (the
talk's "Urban, r = 6, k = 2"); the nonnegative variant keeps W, H >= 0, the sign-free one
(``nonnegative=False``) is sparse component analysis (complete dictionary learning). The
model holds W and H; the registered solver of family ``"sparse"`` fits them from
``n_init`` starts at once (a batch) and the model keeps the best.
:meth:`LRSCA.identifiability` checks the sufficient uniqueness condition of Cohen and
Gillis on the fitted factors.

References
----------
J. E. Cohen and N. Gillis, "Identifiability of complete dictionary learning", SIAM J.
Mathematics of Data Science 1(3), 2019 (arXiv:1808.08765, "Identifiability of low-rank
sparse component analysis").
N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020, Chapter 9 (sparse NMF).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import kernels
from ..checks import dense_tensor
from ..data import check_dtype
from ..exceptions import NotFittedError
from ..fit import FitResult
from ..init import make_generator
from ..params import Anything, Boolean, Choice, Integer, OneOf, Param, Registered, check_params
from ..problem import FactorState, SparseProblem
from ..registry import get_solver
from .base import FactorModule, check_device, set_factor_

__all__ = ["LRSCA"]

LRSCA_PARAMETERS = {
    "rank": Param(None, Integer(1), "number r of components", required=True),
    "k": Param(None, Integer(1), "nonzeros allowed per column of H", required=True),
    "nonnegative": Param(True, Boolean(), "W, H >= 0 (False: sign-free sparse component analysis)"),
    "coding": Param("exact", Choice("exact", "greedy"), "the k-sparse coding of H"),
    "init": Param("columns", Anything("'columns', 'random', or a W of shape (m, r) or (n_init, m, r)"), "the starts"),
    "n_init": Param(10, Integer(1), "number of starts fitted together; the best is kept"),
    "solver": Param("alternating", Registered("sparse"), "registered solver of family 'sparse'"),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the random starts"),
}


class LRSCA(FactorModule):
    r"""Low-rank sparse component analysis :math:`X \approx WH`, k-sparse columns of H, as a ``torch.nn.Module``.

    Parameters
    ----------
    rank : int
        Number r of components, r <= min(m, n).
    k : int
        Nonzeros allowed per column of H, 1 <= k <= r (k = r is plain NMF / least squares).
    nonnegative : bool
        True (default): W, H >= 0 and X must be nonnegative; False: any signs.
    coding : {"exact", "greedy"}
        The codes: every support of size <= k (exact; :math:`\sum_{s \le k} \binom{r}{s}`
        small solves per column, fine for r up to about 20) or (nonnegative) orthogonal
        matching pursuit.
    init : str or Tensor
        ``"columns"`` (each start: r distinct columns of X drawn at random, which lie on
        the model's faces), ``"random"`` (uniform entries in [0, 1), or standard normal
        without signs) or a W of shape (m, r) (one start) or (n_init, m, r).
    n_init : int
        Starts fitted together as one batch; the lowest objective is kept.
    solver : str
        Registered solver of family ``"sparse"`` (``"alternating"``).
    seed : int, optional
        Seed of the random starts.
    device, dtype :
        Where and in which precision the factors live (default: X's).
    **solver_options
        Checked by the solver now (``w_sweeps``, ``w_delta``, ``greedy_sweeps``).

    Attributes
    ----------
    W : Parameter, shape (m, r)
        Unit-norm columns.
    H : Parameter, shape (r, n)
        At most k nonzeros per column.
    start_errors_ : list of float
        The relative error :math:`\|X - WH\|_F / \|X\|_F` (a fraction) of every start.
    best_ : int
        The index of the start kept.
    result_ : FitResult

    Memory: one step holds, per start, the products (r x n and r x m) and the solutions of
    one block of columns for every support, at most :math:`2^{22}` entries
    (``kernels.ksparse_codes``); never an m x n reconstruction per start beyond the
    objective's, which is evaluated in chunks.

    Examples
    --------
    >>> import torch
    >>> from torchnmf_l1 import LRSCA
    >>> g = torch.Generator().manual_seed(0)
    >>> W = torch.rand(20, 4, generator=g, dtype=torch.float64)
    >>> H = torch.zeros(4, 60, dtype=torch.float64)
    >>> for j in range(60):
    ...     H[[j % 4, (j + 1 + j // 4) % 4], j] = 1.0 + torch.rand(2, generator=g, dtype=torch.float64)
    >>> model = LRSCA(4, k=2, seed=0)
    >>> _ = model.fit(W @ H)
    >>> float(torch.linalg.norm(W @ H - model.reconstruct()) / torch.linalg.norm(W @ H)) < 1e-8
    True
    """

    hyperparameters = LRSCA_PARAMETERS
    rank_axes = {"W": -1, "H": -2}
    solver_family = "sparse"

    def __init__(self, rank: int, k: int, *, nonnegative: bool = True, coding: str = "exact", init="columns",
                 n_init: int = 10, solver: str = "alternating", seed: int | None = None, device=None, dtype=None,
                 **solver_options):
        super().__init__()
        check_params(self.hyperparameters, dict(rank=rank, k=k, nonnegative=nonnegative, coding=coding, init=init,
                                           n_init=n_init, solver=solver, seed=seed), "LRSCA")
        if k > rank:
            raise ValueError(f"k must be <= rank = {rank} (the nonzeros of a column of H), got k={k}")
        if isinstance(init, str) and init not in ("columns", "random"):
            raise ValueError(f"init must be 'columns', 'random' or a tensor W, got {init!r}")
        check_device(device)
        self.rank, self.k, self.nonnegative, self.coding = rank, k, nonnegative, coding
        self.n_init, self.seed, self.solver = n_init, seed, solver.lower()
        self.device = None if device is None else torch.device(device)
        self.dtype = check_dtype(dtype)
        self.init = init if isinstance(init, str) else self._check_start(init)
        get_solver(self.solver, family="sparse").check_options(solver_options)
        self.solver_options = dict(solver_options)
        self.W = nn.Parameter(torch.empty(0, rank, device=self.device, dtype=self.dtype or torch.float32))
        self.H = nn.Parameter(torch.empty(rank, 0, device=self.device, dtype=self.dtype or torch.float32))
        self.start_errors_: list | None = None
        self.best_: int | None = None
        self.result_: FitResult | None = None

    def _check_start(self, W0) -> Tensor:
        W0 = dense_tensor(W0, "init", ndim=(2, 3), nonnegative=self.nonnegative)
        if W0.shape[-1] != self.rank:
            raise ValueError(f"init must have r = {self.rank} columns, got shape {tuple(W0.shape)}")
        if W0.dim() == 3 and W0.shape[0] != self.n_init:
            raise ValueError(f"a 3-D init holds n_init = {self.n_init} starts, got shape {tuple(W0.shape)}")
        return W0

    def extra_repr(self) -> str:
        return (f"rank={self.rank}, k={self.k}, nonnegative={self.nonnegative}, coding={self.coding!r}, "
                f"n_init={self.n_init}")

    @property
    def fitted(self) -> bool:
        return self.H.shape[-1] > 0

    def forward(self) -> Tensor:
        """The reconstruction W H."""
        return self.W @ self.H

    def _starts(self, X: Tensor) -> Tensor:
        m, n = X.shape
        R = self.n_init
        if isinstance(self.init, Tensor):
            if self.init.shape[-2] != m:
                raise ValueError(f"init has {self.init.shape[-2]} rows but X has m = {m}")
            W0 = self.init.to(device=X.device, dtype=X.dtype)
            return W0.expand(R, m, self.rank).clone() if W0.dim() == 2 else W0.clone()
        g = make_generator(self.seed, X.device)
        if self.init == "random":
            draw = torch.rand if self.nonnegative else torch.randn
            return draw(R, m, self.rank, generator=g, device=X.device, dtype=X.dtype)
        picks = torch.stack([torch.randperm(n, generator=g, device=X.device)[: self.rank] for _ in range(R)])
        return X.mT[picks].mT.contiguous()  # (R, m, r)

    def fit(self, X, **fit_options) -> FitResult:
        """Fit W and H to X (m x n, dense; nonnegative unless ``nonnegative=False``).

        ``fit_options`` as in :class:`torchnmf_l1.fit.FitOptions` (default: at most 500
        iterations, relative decrease ``tol=1e-6`` checked every 5). Returns the
        :class:`FitResult` of the batch of starts; the model keeps the best one.
        """
        X = dense_tensor(X, "X", dtype=self.dtype, device=self.device, nonnegative=self.nonnegative)
        m, n = X.shape
        if self.rank > min(m, n):
            raise ValueError(f"rank r = {self.rank} must be <= min(m, n) = {min(m, n)} for X of shape {(m, n)}")
        batch = None if self.n_init == 1 else self.n_init
        W0 = self._starts(X)
        state = FactorState(W0 if batch is not None else W0[0], None)
        problem = SparseProblem(X, self.k, self.nonnegative, self.coding, batch)
        result, output = self._run_solver("sparse", self.solver, problem, state, self.solver_options, fit_options)
        W, H = output.factors["W"], output.factors["H"]
        errors = output.extra["relative_error"]
        errors = errors if isinstance(errors, list) else [errors]
        self.start_errors_ = errors
        self.best_ = min(range(len(errors)), key=errors.__getitem__)
        if batch is not None:
            W, H = W[self.best_], H[self.best_]
        set_factor_(self, "W", W)
        set_factor_(self, "H", H)
        self.result_ = result
        return result

    def fit_transform(self, X, **fit_options) -> Tensor:
        """Fit, then return H (r x n)."""
        self.fit(X, **fit_options)
        return self.H.detach()

    def transform(self, X) -> Tensor:
        """The k-sparse codes of new columns X (m x n') for the fitted W."""
        if not self.fitted:
            raise NotFittedError("LRSCA is not fitted yet; call fit(X) first")
        X = dense_tensor(X, "X", dtype=self.W.dtype, device=self.W.device, nonnegative=self.nonnegative)
        return kernels.ksparse_nnls(self.W.detach(), X, self.k, method=self.coding, nonnegative=self.nonnegative)

    def identifiability(self, **options) -> kernels.SparseIdentifiability:
        """The uniqueness condition of Cohen and Gillis checked on (W, H) (:func:`torchnmf_l1.kernels.sparse_identifiability`,
        with this model's k; ``options``: ``zero_tol``, ``rank_tol``, ``max_nodes``)."""
        if not self.fitted:
            raise NotFittedError("LRSCA is not fitted yet; call fit(X) first")
        return kernels.sparse_identifiability(self.W.detach(), self.H.detach(), self.k, **options)
