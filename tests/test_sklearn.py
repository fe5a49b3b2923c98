"""The scikit-learn estimator: sklearn's own estimator checks, a peer comparison, pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from torchnmf_l1.sklearn import TorchNMF  # noqa: E402

# Every applicable check of scikit-learn 1.9 passes; none is expected to fail. The only
# check not run is check_array_api_input, which sklearn itself skips unless the
# SCIPY_ARRAY_API environment variable is set (the estimator takes NumPy / SciPy input).
EXPECTED_FAILED = {}


pytestmark = pytest.mark.usefixtures("one_thread")


@parametrize_with_checks([TorchNMF(random_state=0)], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _planted(n_samples=60, n_features=30, rank=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n_samples, rank)) @ rng.random((rank, n_features))


def test_matches_sklearn_nmf_on_planted_data():
    from sklearn.decomposition import NMF as SkNMF

    # rank 4 plus noise, six draws: both run to 3000 iterations or their own convergence test.
    # The comparison is of the fits reached (each draw's local minimum may differ; the median
    # ratio may not), not of the progress per iteration, which differs by design (our HALS
    # repeats cheap inner sweeps, sklearn's CD makes one per iteration)
    ratios = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        X = rng.random((60, 4)) @ rng.random((4, 30)) + 0.05 * rng.random((60, 30))
        ours = TorchNMF(4, random_state=0, max_iter=3000, tol=1e-6)
        W = ours.fit_transform(X)
        theirs = SkNMF(4, init="nndsvda", max_iter=3000, tol=1e-6, random_state=0).fit(X)
        assert W.shape == (60, 4) and ours.components_.shape == (4, 30)
        assert (W >= 0).all() and (ours.components_ >= 0).all()
        rel_ours = np.linalg.norm(X - W @ ours.components_) / np.linalg.norm(X)
        ratios.append(rel_ours / (theirs.reconstruction_err_ / np.linalg.norm(X)))
        assert rel_ours < 0.02, rel_ours
    assert np.median(ratios) <= 1.005 and max(ratios) < 1.2, ratios
    X = _planted()
    ours = TorchNMF(4, random_state=0, max_iter=300).fit(X)
    W = ours.transform(X)
    np.testing.assert_allclose(ours.inverse_transform(W), W @ ours.components_)
    W = ours.fit_transform(X)
    np.testing.assert_allclose(ours.reconstruction_err_, np.linalg.norm(X - W @ ours.components_), rtol=1e-6)
    # transform of the training samples recovers (nearly) the same coefficients
    np.testing.assert_allclose(ours.transform(X) @ ours.components_, X, atol=5e-2 * X.max())


def test_sparse_input_and_kl_loss():
    import scipy.sparse

    X = scipy.sparse.random(40, 25, density=0.3, random_state=0, format="csr") * 5
    est = TorchNMF(3, loss="kl", random_state=0, max_iter=100)
    W = est.fit_transform(X)
    assert W.shape == (40, 3) and np.isfinite(W).all() and est.model_.solver == "mu"
    # the error of a sparse X is computed on its support (no dense copy) and equals the dense one
    np.testing.assert_allclose(est.reconstruction_err_, np.linalg.norm(X.toarray() - W @ est.components_), rtol=1e-6)


def test_grid_search_in_a_pipeline():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    X = _planted(40, 20, 3)

    def score(pipe, X, y=None):
        nmf = pipe[-1]
        return -np.linalg.norm(X - nmf.inverse_transform(nmf.transform(X)))

    grid = GridSearchCV(make_pipeline(TorchNMF(random_state=0, max_iter=100)), {"torchnmf__n_components": [1, 3]}, cv=2, scoring=score)
    grid.fit(X)
    assert grid.best_params_ == {"torchnmf__n_components": 3}  # the planted rank fits best
    assert grid.best_estimator_[-1].get_params()["n_components"] == 3


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="Negative values in data passed to TorchNMF"):
        TorchNMF(2).fit(-np.ones((4, 3)))
    with pytest.raises(ValueError, match="n_components must be a positive integer or None, got 0"):
        TorchNMF(0).fit(np.ones((4, 3)))
    est = TorchNMF(2, random_state=0, max_iter=20).fit(_planted(10, 6, 2))
    with pytest.raises(ValueError, match=r"must have 2 columns \(n_components_\), got shape \(3, 5\)"):
        est.inverse_transform(np.ones((3, 5)))


def test_custom_init_starts_from_the_given_w_and_h():
    # init="custom" with W, H: the fit is the model's fit of X^T from (H^T, W^T)
    from torchnmf_l1 import NMF

    X = _planted(12, 8, 3)
    rng = np.random.default_rng(1)
    W0, H0 = rng.random((12, 3)), rng.random((3, 8))
    est = TorchNMF(3, init="custom", max_iter=10, tol=0, random_state=0)
    W = est.fit_transform(X, W=W0, H=H0)
    direct = NMF(3, dtype=torch.float64)
    direct.fit(torch.from_numpy(X.T.copy()), W=torch.from_numpy(H0.T.copy()), H=torch.from_numpy(W0.T.copy()),
               max_iter=10, tol=0)
    np.testing.assert_allclose(W, direct.H.detach().numpy().T, rtol=1e-12)
    np.testing.assert_allclose(est.components_, direct.W.detach().numpy().T, rtol=1e-12)
    other = TorchNMF(3, init="custom", max_iter=10, tol=0, random_state=0)
    assert not np.allclose(other.fit_transform(X, W=W0[::-1].copy(), H=H0), W)  # another start, another fit
    with pytest.raises(ValueError, match="needs both W and H, got W=given and H=None"):
        TorchNMF(3, init="custom").fit_transform(X, W=W0)
    with pytest.raises(ValueError, match=r"W must have shape \(12, 3\)"):
        TorchNMF(3, init="custom").fit_transform(X, W=W0[:5], H=H0)
    # as in scikit-learn: W, H with another init are ignored, with a warning
    with pytest.warns(RuntimeWarning, match="init!='custom'"):
        TorchNMF(3, max_iter=5, random_state=0).fit_transform(X, W=W0, H=H0)


def test_convergence_warning_is_sklearns_and_not_suppressed():
    from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

    import torchnmf_l1

    assert issubclass(torchnmf_l1.ConvergenceWarning, SkConvergenceWarning)
    with pytest.warns(SkConvergenceWarning, match="max_iter=2"):
        TorchNMF(3, max_iter=2, random_state=0).fit(_planted(20, 10, 3))
