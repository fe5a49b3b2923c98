"""Separable NMF: kernels against brute-force references, planted recovery by every solver, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from torchnmf_l1 import SeparableNMF, h2nmf_clustering
from torchnmf_l1 import kernels
from torchnmf_l1.exceptions import ConvergenceWarning
from torchnmf_l1.fit import run_fit
from torchnmf_l1.problem import SeparableProblem
from torchnmf_l1.registry import get_solver
from torchnmf_l1.synthetic import middle_points

METHODS = ["spa", "snpa", "xray", "vca", "fgnsr"]


def planted(m=25, n=80, r=4, noise=1e-4, seed=0, dtype=torch.float64, device="cpu"):
    """X = W [I, H'] P + noise with H' in the simplex (Dirichlet(1)), columns permuted."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=torch.float64)
    Hm = -torch.log(torch.rand(r, n - r, generator=g, dtype=torch.float64))
    Hm = Hm / Hm.sum(0)
    H = torch.cat([torch.eye(r, dtype=torch.float64), 0.9 * Hm + 0.1 / r], 1)  # vertices stay extreme
    perm = torch.randperm(n, generator=g)
    X = (W @ H)[:, perm] + noise * torch.rand(m, n, generator=g, dtype=torch.float64)
    truth = set(torch.argsort(perm)[:r].tolist())
    return X.to(device=device, dtype=dtype), truth


@pytest.mark.filterwarnings("ignore::torchnmf_l1.ConvergenceWarning")  # a fixed FGNSR budget is the point here
@pytest.mark.parametrize("method", METHODS)
def test_planted_recovery(method, device, dtype):
    X, truth = planted(dtype=dtype, device=device)
    model = SeparableNMF(4, method, seed=0, device=device, dtype=dtype)
    result = model.fit(X, max_iter=100) if method == "fgnsr" else model.fit(X)
    assert set(model.indices.tolist()) == truth, f"{method} picked {model.indices.tolist()}, truth {sorted(truth)}"
    assert model.indices.dtype == torch.int64 and model.H.dtype == dtype and model.H.device.type == device.type
    assert bool((model.H >= 0).all())
    torch.testing.assert_close(model.W, X[:, model.indices], msg="W must be X(:, K)")
    assert result.extra["relative_error"] < 0.1, result.extra["relative_error"]


def test_h2nmf_recovers_pure_clusters(dtype):
    # every column is a scaled vertex plus noise: the representatives point at the vertices
    g = torch.Generator().manual_seed(3)
    W = torch.rand(20, 4, generator=g, dtype=torch.float64)
    labels = torch.arange(160) % 4
    X = W[:, labels] * (0.5 + torch.rand(160, generator=g, dtype=torch.float64)) + 1e-3 * torch.rand(20, 160, generator=g, dtype=torch.float64)
    model = SeparableNMF(4, "h2nmf", dtype=dtype)
    model.fit(X.to(dtype))
    assert sorted(labels[model.indices].tolist()) == [0, 1, 2, 3]
    assert model.result_.extra["relative_error"] < 0.2


def test_spa_tie_break_on_original_norm():
    # after the first pick (e1 direction), columns 1 and 2 have the same residual norm 2;
    # column 2 has the larger original norm, so it wins although argmax alone picks 1
    X = torch.tensor([[3.0, 1.0, 2.0], [0.0, 2.0, 2.0]], dtype=torch.float64)
    assert kernels.spa(X, 2).tolist() == [0, 2]


def test_float32_matches_float64():
    X, _ = planted(noise=1e-3, seed=5)
    for method in ["spa", "snpa", "xray", "vca"]:
        a = SeparableNMF(4, method, seed=1, dtype=torch.float32).fit(X.float()).extra["indices"]
        b = SeparableNMF(4, method, seed=1, dtype=torch.float64).fit(X).extra["indices"]
        assert sorted(a) == sorted(b), method


def test_vca_repeats_with_seed():
    X, _ = planted(noise=1e-2, seed=2)
    a = SeparableNMF(4, "vca", seed=7).fit(X).extra["indices"]
    b = SeparableNMF(4, "vca", seed=7).fit(X).extra["indices"]
    assert a == b


# ---------------------------------------------------------------- projections vs brute force
def _omega_row_bruteforce(y, c):
    """Enumerate the active sets of one row's QP: x_j = c_j t on S, t in {0, 1, free}."""
    d, off = y[0], y[1:]
    best, best_val = None, np.inf
    k = len(off)
    for mask in itertools.product([False, True], repeat=k):
        S = np.array(mask, dtype=bool)
        t_free = (d + np.sum(c[S] * off[S])) / (1 + np.sum(c[S] ** 2))
        for t in (0.0, 1.0, t_free):
            if not -1e-12 <= t <= 1 + 1e-12:
                continue
            x = np.where(S, c * t, np.clip(off, 0, None))
            if np.any(x > c * t + 1e-12) or np.any(x < -1e-12):
                continue
            val = (t - d) ** 2 + np.sum((x - off) ** 2)
            if val < best_val - 1e-15:
                best, best_val = (t, x), val
    return best


@pytest.mark.parametrize("weighted", [False, True])
def test_project_omega_matches_bruteforce(weighted):
    rng = np.random.default_rng(0)
    n = 6
    for trial in range(20):
        Y = rng.normal(size=(n, n)) * (0.3 + trial % 3)
        w = rng.uniform(0.5, 2.0, size=n) if weighted else np.ones(n)
        P = kernels.project_omega(torch.from_numpy(Y), torch.from_numpy(w) if weighted else None).numpy()
        for i in range(n):
            others = [j for j in range(n) if j != i]
            c = w[others] / w[i]
            t, x = _omega_row_bruteforce(np.concatenate([[Y[i, i]], Y[i, others]]), c)
            np.testing.assert_allclose(P[i, i], t, atol=1e-10, err_msg=f"row {i} diagonal, trial {trial}")
            np.testing.assert_allclose(P[i, others], x, atol=1e-10, err_msg=f"row {i}, trial {trial}")


def test_project_simplex_matches_bruteforce():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    Y = rng.normal(size=(4, 6))
    for inequality in (False, True):
        P = kernels.project_simplex(torch.from_numpy(Y), inequality=inequality).numpy()
        for j in range(Y.shape[1]):
            cons = [{"type": "eq" if not inequality else "ineq", "fun": lambda x: 1 - x.sum()}]
            ref = minimize(lambda x: np.sum((x - Y[:, j]) ** 2), np.full(4, 0.25), bounds=[(0, None)] * 4, constraints=cons, method="SLSQP", options={"ftol": 1e-14}).x
            np.testing.assert_allclose(P[:, j], ref, atol=1e-6)


def test_simplex_nnls_matches_scipy():
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    W = rng.uniform(size=(8, 3))
    X = rng.uniform(size=(8, 5)) * 1.5
    H = kernels.simplex_nnls(torch.from_numpy(X), torch.from_numpy(W), max_iter=3000, tol=0).numpy()
    for j in range(5):
        ref = minimize(lambda h: 0.5 * np.sum((X[:, j] - W @ h) ** 2), np.full(3, 0.2), bounds=[(0, None)] * 3,
                       constraints=[{"type": "ineq", "fun": lambda h: 1 - h.sum()}], method="SLSQP", options={"ftol": 1e-15}).x
        f = lambda h: 0.5 * np.sum((X[:, j] - W @ h) ** 2)  # noqa: E731
        assert f(H[:, j]) <= f(ref) + 1e-8


def _simplex_nnls_bruteforce(x, W):
    """Exact min 1/2||x - Wh||^2 over {h >= 0, sum h <= 1}: the optimum minimises f on the
    affine hull of the face it lies in, so enumerate faces (support, sum = 1 or free)."""
    r = W.shape[1]
    best, best_val = np.zeros(r), 0.5 * x @ x
    for size in range(1, r + 1):
        for S in itertools.combinations(range(r), size):
            A = W[:, S]
            free = np.linalg.lstsq(A, x, rcond=None)[0]
            # on sum h_S = 1: KKT system [A^T A, 1; 1^T, 0] [h; nu] = [A^T x; 1]
            K = np.block([[A.T @ A, np.ones((size, 1))], [np.ones((1, size)), np.zeros((1, 1))]])
            on_face = np.linalg.solve(K, np.concatenate([A.T @ x, [1.0]]))[:size]
            for hS in (free, on_face):
                if np.all(hS >= -1e-12) and hS.sum() <= 1 + 1e-12:
                    h = np.zeros(r)
                    h[list(S)] = np.clip(hS, 0, None)
                    val = 0.5 * np.sum((x - W @ h) ** 2)
                    if val < best_val:
                        best, best_val = h, val
    return best


def _snpa_bruteforce(X, r):
    """SNPA with exact projections: largest residual (ties by the original norm)."""
    original = np.sum(X * X, 0)
    residual, picks = original.copy(), []
    for _ in range(r):
        top = residual.max()
        near = np.flatnonzero(top - residual <= 1e-6 * top)
        picks.append(int(near[np.argmax(original[near])]))
        W = X[:, picks]
        H = np.stack([_simplex_nnls_bruteforce(X[:, j], W) for j in range(X.shape[1])], 1)
        residual = np.sum((X - W @ H) ** 2, 0)
        residual[picks] = 0
    return picks, H


def test_simplex_nnls_default_stop_matches_bruteforce():
    # the per-column stopping rule (Frank-Wolfe gap <= tol * largest residual) must leave
    # every squared residual within 2 tol of the largest one, on an ill-conditioned W
    # (cond 157: max_iter raised so that the gap rule, not the cap, stops every column)
    rng = np.random.default_rng(4)
    base = rng.uniform(size=(12, 1))
    W = base + 0.05 * rng.uniform(size=(12, 4))  # nearly collinear columns
    H = rng.dirichlet(np.ones(5), size=60).T[:4] * rng.uniform(0.5, 1.6, size=60)
    X = W @ H + 0.01 * rng.uniform(size=(12, 60))
    Hk = kernels.simplex_nnls(torch.from_numpy(X), torch.from_numpy(W), max_iter=5000).numpy()
    ref = np.stack([_simplex_nnls_bruteforce(X[:, j], W) for j in range(60)], 1)
    res, res_ref = np.sum((X - W @ Hk) ** 2, 0), np.sum((X - W @ ref) ** 2, 0)
    assert np.all(Hk >= 0) and np.all(Hk.sum(0) <= 1 + 1e-12)
    assert np.all(res >= res_ref - 1e-12), "the brute-force reference is not optimal"
    assert np.max(res - res_ref) <= 2e-6 * res_ref.max(), np.max(res - res_ref) / res_ref.max()


@pytest.mark.parametrize("seed", [0, 1])
def test_snpa_matches_bruteforce_snpa(seed):
    X, _ = planted(m=10, n=40, r=4, noise=0.05, seed=seed)
    picks, H_ref = _snpa_bruteforce(X.numpy(), 4)
    K, H = kernels.snpa(X, 4)
    assert K.tolist() == picks
    torch.testing.assert_close(H, torch.from_numpy(H_ref), atol=1e-4, rtol=0)


def test_rank2_nnls_matches_scipy():
    from scipy.optimize import nnls

    rng = np.random.default_rng(3)
    W = rng.uniform(size=(10, 2))
    X = rng.normal(size=(10, 30))
    H = kernels.rank2_nnls(torch.from_numpy(W), torch.from_numpy(X)).numpy()
    ref = np.stack([nnls(W, X[:, j])[0] for j in range(30)], 1)
    np.testing.assert_allclose(H, ref, atol=1e-10)


def test_h2nmf_clustering_three_clusters():
    g = torch.Generator().manual_seed(0)
    W = torch.rand(20, 3, generator=g, dtype=torch.float64)
    truth = torch.arange(300) % 3
    H = torch.zeros(3, 300, dtype=torch.float64)
    H[truth, torch.arange(300)] = 1
    H = 0.85 * H + 0.15 * torch.rand(3, 300, generator=g, dtype=torch.float64) / 3
    clusters = h2nmf_clustering(W @ H, 3)
    pairs = set(zip(truth.tolist(), clusters.labels.tolist()))
    assert len(pairs) == 3, f"clusters mix the planted groups: {sorted(pairs)}"
    assert sorted(clusters.sizes.tolist()) == [100, 100, 100]
    assert (clusters.labels[clusters.representatives] == torch.arange(3)).all()


# ---------------------------------------------------------------- FGNSR
MONOTONE = dict(momentum="reject", mu_rule="trace-ratio", spa_init=True, weights="l1")  # the package's earlier scheme


def _authors_fgnsr_reference(M, r, p, iterations, target):
    """Gillis and Luce's FGNSR loop written out in NumPy from the description of their code:
    X = 0, mu0 = (||M - M(:,K)H||^2 + e) / p(K), scheme II momentum (alpha0 = 0.05), every step
    taken, a rise (not right after a restart) resets the momentum, and at each restart mu moves by
    1 -/+ sigma towards trace(X) = target (sigma = 0.1, halved at each change of direction)."""
    from torchnmf_l1 import kernels

    Mt = torch.as_tensor(M)
    K = kernels.spa(Mt, r)
    H = kernels.nnls_columns(Mt, Mt[:, K]).numpy()
    error = np.sum((M - M[:, K.numpy()] @ H) ** 2)
    mu = (error + 1e-6 * np.sum(M * M)) / p[K.numpy()].sum()
    n = M.shape[1]
    L = np.linalg.norm(M, 2) ** 2
    X = np.zeros((n, n)); Y = X.copy(); alpha = 0.05; restarted = False
    sigma, direction, restarts = 0.1, 0, 0
    f = 0.5 * np.sum((M - M @ X) ** 2) + mu * p @ np.diag(X)
    ones = torch.ones(n, dtype=torch.float64)
    for _ in range(iterations):
        alpha_next = (np.sqrt(alpha**4 + 4 * alpha**2) - alpha**2) / 2
        beta = alpha * (1 - alpha) / (alpha**2 + alpha_next)
        G = M.T @ (M @ Y - M) + mu * np.diag(p)
        X_old, X = X, kernels.project_omega(torch.as_tensor(Y - G / L), ones).numpy()
        Y = X + beta * (X - X_old)
        f_old, f = f, 0.5 * np.sum((M - M @ X) ** 2) + mu * p @ np.diag(X)
        if not restarted and f > f_old:
            Y, alpha, restarted = X.copy(), 0.05, True
            restarts += 1
        else:
            alpha, restarted = alpha_next, False
        if restarted:
            trace = np.trace(X)
            if trace < target:
                sigma = sigma / 2 if direction < 0 else sigma
                mu, direction = (1 - sigma) * mu, 1
            else:
                sigma = sigma / 2 if direction > 0 else sigma
                mu, direction = (1 + sigma) * mu, -1
    return X, restarts


def test_fgnsr_follows_the_authors_iteration():
    X = middle_points(6, 10, outward=0.4, seed=0)  # a case whose objective rises: restarts move mu
    problem = SeparableProblem(X, 6, torch.Generator().manual_seed(0))
    solver = get_solver("fgnsr", family="separable")(problem)
    with torch.no_grad():
        for _ in range(200):
            solver.step()
    reference, restarts = _authors_fgnsr_reference(X.numpy(), 6, solver.p.numpy(), 200, 6 / 2 + 1)
    assert restarts >= 2, "no restart in 200 iterations: the mu rule was not exercised"
    np.testing.assert_allclose(solver.solution.numpy(), reference, rtol=1e-8, atol=1e-10)


def test_fgnsr_restart_rule_needs_restart_momentum():
    X, _ = planted(noise=1e-2, seed=4)
    with pytest.raises(ValueError, match="mu_rule='restart'.*momentum='restart'"):
        SeparableNMF(4, "fgnsr", momentum="reject", dtype=torch.float64).fit(X, max_iter=2)


def test_fgnsr_objective_never_increases():
    X, _ = planted(noise=1e-2, seed=4)
    problem = SeparableProblem(X, 4, torch.Generator().manual_seed(0))
    solver = get_solver("fgnsr", family="separable")(problem, adjust_mu=False, momentum="reject", mu_rule="trace-ratio")
    result = run_fit(solver, max_iter=60, tol=0, check_every=1)
    obj = np.array(result.objective)
    assert np.all(np.diff(obj) <= 1e-12 * obj[0]), obj


def test_fgnsr_default_tol_does_not_stop_on_mu_increase():
    # the mu adjustment (every 10 iterations, at the checks) raises the objective for the
    # first checks; with a positive default tol the fit must go on past them: declaring
    # convergence on an increase would stop it at iteration 10 with a wrong selection
    X, truth = planted(noise=1e-2, seed=4)
    tol = get_solver("fgnsr", family="separable").fit_defaults.tol
    assert tol > 0
    with pytest.warns(ConvergenceWarning):  # 150 iterations do not meet tol = 1e-6 here
        result = SeparableNMF(4, "fgnsr", seed=0, dtype=torch.float64, **MONOTONE).fit(X, max_iter=150)
    obj = np.array(result.objective)
    rel = (obj[1:] - obj[:-1]) / np.abs(obj[:-1])
    assert rel[0] > tol, "the scenario lost its point: no increase at the first check"
    assert result.n_iter == 150 and not result.converged, result.message
    assert set(result.extra["indices"]) == truth


def test_fgnsr_converges_on_stagnation_with_default_tol():
    # once mu is fixed the objective is monotone; a long run meets the default tol and
    # stops at a check whose change is below tol, never at an increase
    X, _ = planted(noise=1e-2, seed=4)
    result = SeparableNMF(4, "fgnsr", seed=0, dtype=torch.float64, adjust_mu=False, **MONOTONE).fit(X, max_iter=5000)
    obj = np.array(result.objective)
    assert result.converged and result.n_iter < 5000, result.message
    assert abs(obj[-1] - obj[-2]) < get_solver("fgnsr", family="separable").fit_defaults.tol * abs(obj[-2])
    assert np.all(np.diff(obj) <= 1e-12 * obj[0]), "objective rose with mu fixed"


@pytest.mark.filterwarnings("ignore::torchnmf_l1.ConvergenceWarning")  # a fixed FGNSR budget is the point here
def test_fgnsr_detects_rank_from_diagonal():
    X, truth = planted(noise=0.0, seed=6)
    model = SeparableNMF(None, "fgnsr", mu=1e-3, dtype=torch.float64, seed=0)
    model.fit(X, max_iter=300)
    assert set(model.indices.tolist()) == truth


@pytest.mark.filterwarnings("ignore::torchnmf_l1.ConvergenceWarning")  # a fixed FGNSR budget is the point here
def test_middle_points_noiseless_recovered():
    for seed in range(1):
        X = middle_points(6, 10, outward=0.0, seed=seed)
        for method in ("spa", "fgnsr"):
            assert set(SeparableNMF(6, method, seed=0, dtype=torch.float64).fit(X, **({"max_iter": 100} if method == "fgnsr" else {})).extra["indices"]) == set(range(6)), (method, seed)


@pytest.mark.filterwarnings("ignore::torchnmf_l1.ConvergenceWarning")  # a fixed FGNSR budget is the point here
@pytest.mark.parametrize("seed", [0, 4])
def test_middle_points_fgnsr_correct_where_spa_fails(seed):
    # delta = 0.4: the pushed-out midpoints have larger norms than some vertices, SPA picks
    # one of them; FGNSR's self-dictionary relaxation still finds the six vertices
    X = middle_points(6, 10, outward=0.4, seed=seed)
    spa = set(SeparableNMF(6, "spa", dtype=torch.float64).fit(X).extra["indices"])
    fgnsr = set(SeparableNMF(6, "fgnsr", seed=0, dtype=torch.float64).fit(X, max_iter=300).extra["indices"])
    assert spa != set(range(6)), f"SPA found the vertices at this noise level (seed {seed}): the test lost its point"
    assert fgnsr == set(range(6)), f"FGNSR picked {sorted(fgnsr)}"


# ---------------------------------------------------------------- subsampling and errors
@pytest.mark.filterwarnings("ignore::torchnmf_l1.ConvergenceWarning")  # a fixed FGNSR budget is the point here
@pytest.mark.parametrize("method", ["spa", "fgnsr"])
def test_subsample_indices_index_full_x(method):
    X, truth = planted(n=120, noise=1e-4, seed=8)
    model = SeparableNMF(4, method, subsample=20, seed=0, dtype=torch.float64)
    result = model.fit(X, max_iter=100) if method == "fgnsr" else model.fit(X)
    idx = model.indices
    assert idx.min() >= 0 and idx.max() < X.shape[1] and idx.unique().numel() == 4
    torch.testing.assert_close(model.W, X[:, idx])
    assert model.H.shape == (4, 120)
    assert model.clusters_.labels.shape == (120,)
    assert set(idx.tolist()) <= set(model.clusters_.representatives.tolist())
    assert result.extra["relative_error"] < 20


def test_bad_inputs():
    X, _ = planted(m=10, n=30)
    with pytest.raises(ValueError, match="rank must be <= min"):
        SeparableNMF(11, "spa").fit(X)
    with pytest.raises(ValueError, match="negative entries"):
        SeparableNMF(2, "spa").fit(X - 1)
    with pytest.raises(ValueError, match="option 'solver' must be a registered separable solver: one of .*got 'foo'"):
        SeparableNMF(2, "foo")
    with pytest.raises(ValueError, match="subsample must be >= rank=4, got 3"):
        SeparableNMF(4, "spa", subsample=3)
    with pytest.raises(ValueError, match="subsample must be <= n = 30"):
        SeparableNMF(4, "spa", subsample=31).fit(X)
    with pytest.raises(TypeError, match="unexpected option"):
        SeparableNMF(4, "spa", mu=1.0)
    with pytest.raises(ValueError, match="needs an integer rank"):
        SeparableNMF(None, "spa")
    with pytest.raises(ValueError, match="needs an explicit mu"):
        SeparableNMF(None, "fgnsr").fit(X)
    with pytest.raises(ValueError, match="option 'n_clusters' must be an integer in \\[1, 30\\], got 0"):
        h2nmf_clustering(X, 0)


def test_failed_fit_keeps_previous_factors():
    X, _ = planted(m=10, n=30)
    model = SeparableNMF(3, "spa", dtype=torch.float64)
    model.fit(X)
    before = (model.indices.clone(), model.H.detach().clone())
    with pytest.raises(ValueError):
        model.fit(X[:2])
    assert torch.equal(model.indices, before[0]) and torch.equal(model.H.detach(), before[1])


def test_state_dict_round_trip():
    X, _ = planted(m=10, n=30)
    model = SeparableNMF(3, "spa", dtype=torch.float64)
    model.fit(X)
    other = SeparableNMF(3, "spa", dtype=torch.float64)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.indices, model.indices)
    torch.testing.assert_close(other(), model())


@pytest.mark.parametrize("direct_max", [256, 0], ids=["eigh", "subspace-iteration"])
def test_rank2_svd_matches_lapack(direct_max):
    g = torch.Generator().manual_seed(9)
    for shape in [(15, 40), (40, 15)]:
        X = torch.rand(*shape, generator=g, dtype=torch.float64)
        U, S, Vh = kernels.rank2_svd(X, tol=1e-13, max_iter=2000, direct_max=direct_max)
        U0, S0, Vh0 = torch.linalg.svd(X, full_matrices=False)
        torch.testing.assert_close(S, S0[:2], rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(U @ torch.diag(S) @ Vh, U0[:, :2] @ torch.diag(S0[:2]) @ Vh0[:2], rtol=1e-6, atol=1e-8)
    x = torch.rand(7, 1, generator=g, dtype=torch.float64)  # one column: rank one, exact
    U, S, Vh = kernels.rank2_svd(x, direct_max=direct_max)
    torch.testing.assert_close(U @ torch.diag(S) @ Vh, x)
    assert S[1] == 0 and torch.allclose(U.T @ U, torch.eye(2, dtype=torch.float64))


def test_h2nmf_split_takes_the_authors_clipped_rank_two_columns():
    # one split by a literal reference: rank-two SVD, SPA on the projection, the two columns
    # of the rank-two approximation clipped at 0, NNLS of the cluster on them (scipy), threshold
    import scipy.optimize

    from torchnmf_l1.kernels import h2nmf as h2

    g = torch.Generator().manual_seed(2)
    W = torch.rand(12, 4, generator=g, dtype=torch.float64) ** 6  # spiky spectra: the rank-two columns go negative
    H = torch.rand(4, 80, generator=g, dtype=torch.float64) ** 5
    X = W @ (H / H.sum(dim=0))
    leaf = h2._leaf(X.T.contiguous(), torch.arange(80))
    U, S, Vh = h2.rank2_svd(X)
    Y = S.unsqueeze(1) * Vh
    K = kernels.spa(Y, 2)
    W2 = np.maximum((U @ Y[:, K]).numpy(), 0.0)
    H = np.stack([scipy.optimize.nnls(W2, X[:, j].numpy())[0] for j in range(80)], axis=1)
    x = torch.from_numpy(H[0] / (H.sum(axis=0) + 1e-16))
    first = x >= h2.split_threshold(x)
    # the split in the 2-D projection without the clip differs here: the test can tell them apart
    H_projected = h2.rank2_nnls(Y[:, K], Y)
    x_projected = H_projected[0] / (H_projected.sum(dim=0) + 1e-16)
    assert bool(((x_projected >= h2.split_threshold(x_projected)) != first).any())
    assert sorted(leaf.split[0].tolist()) == sorted(torch.nonzero(first).squeeze(1).tolist())


@pytest.mark.parametrize("scaling", ["authors", "sqrt-size", "none"])
def test_subsampled_representatives_are_weighted_as_asked(scaling):
    g = torch.Generator().manual_seed(0)
    W = torch.rand(15, 6, generator=g, dtype=torch.float64)  # 6 endmembers, 4 selected: the weighting matters
    H = torch.rand(6, 300, generator=g, dtype=torch.float64) ** 2
    X = W @ (H / H.sum(dim=0))
    model = SeparableNMF(4, "spa", subsample=30, subsample_scaling=scaling, dtype=torch.float64)
    model.fit(X)
    clusters = model.clusters_  # the fit's own clustering (a recomputed one may break near ties otherwise)
    reps = X[:, clusters.representatives]
    if scaling == "sqrt-size":
        reps = reps * clusters.sizes.double().sqrt()
    expected = clusters.representatives[kernels.spa(reps, 4)]
    # as sets: the fit runs at its own thread count, whose round-off may reorder two picks in a near tie
    assert sorted(model.indices.tolist()) == sorted(expected.tolist())
    if scaling == "authors":  # SPA on the plain representatives, not the scaled ones
        scaled = clusters.representatives[kernels.spa(X[:, clusters.representatives] * clusters.sizes.double().sqrt(), 4)]
        assert sorted(scaled.tolist()) != sorted(expected.tolist())
    fgnsr = {s: SeparableNMF(4, "fgnsr", subsample=30, subsample_scaling=s, seed=0, dtype=torch.float64)
             for s in ("authors", "sqrt-size")}
    for m in fgnsr.values():
        m.fit(X, max_iter=20, warn=False)
    assert fgnsr["authors"].indices.tolist() == fgnsr["sqrt-size"].indices.tolist()  # FGNSR: scaled, as the authors


def test_subsample_scaling_is_checked():
    with pytest.raises(ValueError, match="subsample_scaling"):
        SeparableNMF(3, "spa", subsample=10, subsample_scaling="sqrt")
