r"""A scikit-learn estimator around :class:`torchnmf_l1.NMF` (needs the ``sklearn`` extra).

scikit-learn's convention is X of shape (n_samples, n_features) ~ W H with W
(n_samples x r) returned by :meth:`TorchNMF.transform` and H = ``components_``
(r x n_features). Internally the package's model is fitted to :math:`X^T` (features x
samples), so that ``transform`` on new samples solves a nonnegative least-squares (or
divergence) problem for new columns with the learnt basis fixed:

.. math::
    \min_{W \ge 0,\, H \ge 0} D(X \mid W H) + \text{penalties},

the same objective as :class:`torchnmf_l1.NMF` (see its docstring for D and the penalties).

References
----------
F. Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 12 (2011) 2825-2830
(the estimator API). D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix
factorization", NeurIPS 2001.
"""

from __future__ import annotations

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
    from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data
except ImportError as err:  # pragma: no cover
    raise ImportError("torchnmf_l1.sklearn needs scikit-learn >= 1.6: pip install 'torchnmf-l1[sklearn]'") from err

import scipy.sparse
import torch

from . import kernels
from .data import prepare_data

__all__ = ["TorchNMF"]


class TorchNMF(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """scikit-learn transformer: X (n_samples, n_features) ~ transform(X) @ components_.

    Parameters
    ----------
    n_components : int or None
        Rank r; None uses min(n_samples, n_features).
    loss, solver, init, beta, zero_weight :
        As in :class:`torchnmf_l1.NMF` (solver None: the registry's default for the loss).
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalties, in the package's convention: W here is ``components_.T`` (features x r)
        and H is ``transform(X).T``.
    max_iter, tol : int, float
        Stopping rule of :meth:`fit` and :meth:`transform`.
    random_state : int or None
        Seed of the initialisation.
    device : str
        Torch device of the computation ("cpu", "cuda"); results come back as NumPy.
    solver_options : dict or None
        Extra options of the solver.

    Attributes
    ----------
    components_ : ndarray, shape (n_components, n_features)
    n_components_ : int
    n_features_in_ : int
    reconstruction_err_ : float
        Frobenius norm of X - W H at the end of fit.
    n_iter_ : int
    model_ : torchnmf_l1.NMF
        The fitted model (factors of X^T).

    Examples
    --------
    >>> import numpy as np
    >>> from torchnmf_l1.sklearn import TorchNMF
    >>> X = np.random.default_rng(0).random((50, 3)) @ np.random.default_rng(1).random((3, 20))
    >>> W = TorchNMF(n_components=3, random_state=0, max_iter=300).fit_transform(X)
    >>> W.shape
    (50, 3)
    """

    def __init__(
        self,
        n_components=None,
        *,
        loss="frobenius",
        solver=None,
        init="nndsvda",
        beta=None,
        zero_weight=None,
        l1_reg_W=0.0,
        l2_reg_W=0.0,
        l1_reg_H=0.0,
        l2_reg_H=0.0,
        max_iter=200,
        tol=1e-4,
        random_state=None,
        device="cpu",
        solver_options=None,
    ):
        self.n_components = n_components
        self.loss = loss
        self.solver = solver
        self.init = init
        self.beta = beta
        self.zero_weight = zero_weight
        self.l1_reg_W = l1_reg_W
        self.l2_reg_W = l2_reg_W
        self.l1_reg_H = l1_reg_H
        self.l2_reg_H = l2_reg_H
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.solver_options = solver_options

    # ------------------------------------------------------------------ helpers
    def _validate(self, X, reset: bool):
        X = validate_data(self, X, accept_sparse=("csr", "csc"), dtype=[np.float64, np.float32], reset=reset)
        check_non_negative(X, f"{type(self).__name__} (input X)")
        return X

    @staticmethod
    def _transposed(X):
        # the package's model works on features x samples
        return X.T.tocsr() if scipy.sparse.issparse(X) else np.ascontiguousarray(X.T)

    def _seed(self):
        rs = self.random_state
        if rs is None or isinstance(rs, (int, np.integer)):
            return None if rs is None else int(rs)
        raise ValueError(f"random_state must be an int or None, got {rs!r}")

    def _make_model(self, rank: int, dtype):
        from .models import NMF

        return NMF(
            rank, loss=self.loss, beta=self.beta, zero_weight=self.zero_weight, solver=self.solver,
            init=self.init, l1_reg_W=self.l1_reg_W, l2_reg_W=self.l2_reg_W, l1_reg_H=self.l1_reg_H,
            l2_reg_H=self.l2_reg_H, seed=self._seed(), device=self.device,
            dtype=torch.float32 if dtype == np.float32 else torch.float64, **(self.solver_options or {}),
        )

    def _start(self, X, rank: int, W, H) -> dict:
        """The model's W, H (of X^T) from scikit-learn's W, H, or {} (see fit_transform)."""
        if self.init != "custom":
            if W is not None or H is not None:
                import warnings

                warnings.warn("When init!='custom', provided W or H are ignored. Set init='custom' to use them as "
                              "initialization.", RuntimeWarning, stacklevel=3)
            return {}
        if W is None or H is None:
            raise ValueError(f"init='custom' needs both W and H, got W={'given' if W is not None else None} and "
                             f"H={'given' if H is not None else None}")
        n_samples, n_features = X.shape
        for name, F, shape in (("W", W, (n_samples, rank)), ("H", H, (rank, n_features))):
            F = np.asarray(F)
            if F.shape != shape:
                raise ValueError(f"{name} must have shape {shape} (init='custom'), got {F.shape}")
            if F.dtype != X.dtype:
                raise TypeError(f"{name} must have X's dtype {X.dtype}, got {F.dtype}")
            if not np.isfinite(F).all() or (F < 0).any():
                raise ValueError(f"{name} must be finite and nonnegative (init='custom')")
        # the model factors X^T (features x samples) ~ H^T W^T
        return {"W": np.ascontiguousarray(np.asarray(H).T), "H": np.ascontiguousarray(np.asarray(W).T)}

    @staticmethod
    def _numpy(t, dtype):
        return t.detach().cpu().numpy().astype(dtype, copy=False)

    # ------------------------------------------------------------------ API
    def fit_transform(self, X, y=None, W=None, H=None):
        """Fit to X (n_samples, n_features) and return W (n_samples, n_components).

        With ``init="custom"``, ``W`` (n_samples x r) and ``H`` (r x n_features) are the
        start (both required, of X's dtype); with another init they are ignored with a
        ``RuntimeWarning``, as in scikit-learn. A fit that stops at ``max_iter`` emits the
        package's ``ConvergenceWarning`` (a subclass of scikit-learn's).
        """
        X = self._validate(X, reset=True)
        rank = self.n_components if self.n_components is not None else min(X.shape)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
            raise ValueError(f"n_components must be a positive integer or None, got {self.n_components!r}")
        start = self._start(X, int(rank), W, H)
        model = self._make_model(int(rank), X.dtype)
        result = model.fit(self._transposed(X), max_iter=self.max_iter, tol=self.tol, **start)
        self.model_ = model
        self.components_ = self._numpy(model.W, X.dtype).T.copy()
        self.n_components_ = int(rank)
        self._n_features_out = self.n_components_
        self.n_iter_ = result.n_iter
        W = self._numpy(model.H, X.dtype).T.copy()
        # ||X - W components_||_F on the torch side: a sparse X is never densified
        data = prepare_data(self._transposed(X), device=model.W.device, dtype=model.W.dtype)
        loss = kernels.frobenius_loss(data.X, model.W.detach(), model.H.detach(), data.support)
        self.reconstruction_err_ = float(torch.sqrt(2 * loss))
        return W

    def fit(self, X, y=None, **params):
        """Fit to X (n_samples, n_features); returns self."""
        self.fit_transform(X, **params)
        return self

    def transform(self, X):
        """W (n_samples, n_components) for new samples, with ``components_`` fixed."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            H = self.model_.transform(self._transposed(X), max_iter=self.max_iter, tol=self.tol)
        return self._numpy(H, X.dtype).T.copy()

    def inverse_transform(self, X):
        """X_hat = W @ components_ (n_samples, n_features) from W (n_samples, n_components)."""
        check_is_fitted(self)
        from sklearn.utils import check_array

        W = check_array(X, dtype=[np.float64, np.float32])
        if W.shape[1] != self.n_components_:
            raise ValueError(f"X must have {self.n_components_} columns (n_components_), got shape {W.shape}")
        return W @ self.components_.astype(W.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

