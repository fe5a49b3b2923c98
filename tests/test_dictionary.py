"""Dictionary NMF, atom matching and k-sparse NNLS: planted solutions and brute force."""

from __future__ import annotations

import math
import itertools
import re
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch

from torchnmf_l1 import ConvergenceWarning, DictionaryNMF, SeparableNMF, ksparse_nnls
from torchnmf_l1.kernels import match_atoms


def _planted(seed=0, p=30, d=40, n=120, true=(2, 5, 7, 11), device="cpu", dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    D = torch.rand(p, d, generator=g, dtype=torch.float64)
    H = torch.rand(len(true), n, generator=g, dtype=torch.float64)
    X = D[:, list(true)] @ H
    return D.to(device, dtype), X.to(device, dtype), sorted(true)


# -- k-sparse NNLS -----------------------------------------------------------------------
def _brute_force(W, X, k):
    W, X = W.double().cpu().numpy(), X.double().cpu().numpy()
    best = []
    for j in range(X.shape[1]):
        value = np.linalg.norm(X[:, j])
        for s in range(1, k + 1):
            for S in itertools.combinations(range(W.shape[1]), s):
                value = min(value, scipy.optimize.nnls(W[:, list(S)], X[:, j])[1])
        best.append(value)
    return np.array(best)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_ksparse_exact_matches_brute_force(device, k):
    g = torch.Generator().manual_seed(k)
    W = torch.rand(12, 6, generator=g, dtype=torch.float64)
    X = torch.rand(12, 40, generator=g, dtype=torch.float64)
    X[:, :10] = W[:, :2] @ torch.rand(2, 10, generator=g, dtype=torch.float64)  # exactly 2-sparse columns
    H = ksparse_nnls(W.to(device), X.to(device), k)
    assert H.device.type == device.type and (H >= 0).all()
    assert int((H > 0).sum(dim=0).max()) <= k
    residual = torch.linalg.norm(X.to(device) - W.to(device) @ H, dim=0).cpu().numpy()
    np.testing.assert_allclose(residual, _brute_force(W, X, k), rtol=1e-7, atol=1e-9)


def test_ksparse_greedy_feasible_and_not_better_than_exact():
    g = torch.Generator().manual_seed(3)
    W = torch.rand(15, 8, generator=g, dtype=torch.float64)
    X = torch.rand(15, 30, generator=g, dtype=torch.float64)
    exact = ksparse_nnls(W, X, 2)
    greedy = ksparse_nnls(W, X, 2, method="greedy")
    assert int((greedy > 0).sum(dim=0).max()) <= 2 and (greedy >= 0).all()
    r_exact = torch.linalg.norm(X - W @ exact, dim=0)
    r_greedy = torch.linalg.norm(X - W @ greedy, dim=0)
    assert (r_greedy >= r_exact - 1e-9).all()
    # on exactly 1-sparse data the greedy pick is exact
    X1 = W[:, [3]] * torch.rand(1, 10, generator=g, dtype=torch.float64)
    torch.testing.assert_close(W @ ksparse_nnls(W, X1, 1, method="greedy"), X1, msg="greedy 1-sparse")


def test_ksparse_errors():
    W, X = torch.rand(5, 3), torch.rand(5, 4)
    with pytest.raises(ValueError, match="k must be <= r = 3.*k=4"):
        ksparse_nnls(W, X, 4)
    with pytest.raises(ValueError, match="option 'k' must be an integer >= 1, got 0"):
        ksparse_nnls(W, X, 0)
    with pytest.raises(ValueError, match="must share m"):
        ksparse_nnls(W, torch.rand(6, 4), 1)
    with pytest.raises(ValueError, match="option 'method' must be one of 'exact', 'greedy', got 'magic'"):
        ksparse_nnls(W, X, 1, method="magic")


# -- atom matching -------------------------------------------------------------------------
def _brute_match(S, groups, bounds, distinct):
    r, d = S.shape
    owner = np.repeat(np.arange(len(groups)), groups)
    best = -np.inf
    choices = itertools.permutations(range(d), r) if distinct else itertools.product(range(d), repeat=r)
    for K in choices:
        counts = np.bincount(owner[list(K)], minlength=len(groups))
        if all(lo <= c <= hi for c, (lo, hi) in zip(counts, bounds)):
            best = max(best, S[np.arange(r), list(K)].sum())
    return best


@pytest.mark.parametrize("distinct", [True, False])
@pytest.mark.parametrize("counts", [[2, 1], [(0, 3), (1, 1)], [(1, 2), (0, 2)]])
def test_match_atoms_several_dictionaries_is_optimal(distinct, counts):
    g = torch.Generator().manual_seed(7)
    D = torch.rand(6, 7, generator=g, dtype=torch.float64)
    U = torch.rand(6, 3, generator=g, dtype=torch.float64)
    groups = (4, 3)
    K = match_atoms(U, D, distinct=distinct, groups=groups, counts=counts).numpy()
    Un = (U / U.norm(dim=0)).numpy()
    Dn = (D / D.norm(dim=0)).numpy()
    S = Un.T @ Dn
    bounds = [(c, c) if isinstance(c, int) else c for c in counts]
    owner = np.repeat(np.arange(2), groups)
    got = np.bincount(owner[K], minlength=2)
    assert all(lo <= c <= hi for c, (lo, hi) in zip(got, bounds)), (K, got, bounds)
    if distinct:
        assert len(set(K.tolist())) == 3
    np.testing.assert_allclose(S[np.arange(3), K].sum(), _brute_match(S, groups, bounds, distinct), rtol=1e-12)


# -- dictionary NMF ----------------------------------------------------------------------------
@pytest.mark.parametrize("init", ["spa", "random"])
def test_dictionary_nmf_recovers_planted_atoms_exact(device, init):
    D, X, true = _planted(device=device)
    model = DictionaryNMF(4, dictionary=D, init=init, seed=1)
    result = model.fit(X)
    assert sorted(model.indices.tolist()) == true
    assert result.converged and result.extra["relative_error"] < 1e-4
    assert model.H.device.type == device.type and (model.H >= 0).all()
    torch.testing.assert_close(model.W, D[:, model.indices])


def test_dictionary_nmf_recovers_planted_atoms_noisy():
    D, X, true = _planted(seed=1)
    g = torch.Generator().manual_seed(2)
    noisy = (X + 0.05 * X.mean() * torch.randn(X.shape, generator=g, dtype=X.dtype)).clamp_min(0)
    model = DictionaryNMF(4, dictionary=D, init="spa")
    result = model.fit(noisy)
    assert sorted(model.indices.tolist()) == true
    assert result.extra["relative_error"] <= result.extra["init_relative_error"] + 1e-12


def test_dictionary_nmf_improves_on_its_random_start():
    D, X, true = _planted(seed=4)
    model = DictionaryNMF(4, dictionary=D, init="random", seed=0)
    result = model.fit(X)
    assert result.extra["init_indices"] != true  # the start is wrong...
    assert result.extra["relative_error"] < 0.1 * result.extra["init_relative_error"]  # ...and the fit repairs it


def test_dictionary_nmf_several_dictionaries_counts():
    g = torch.Generator().manual_seed(5)
    D1 = torch.rand(25, 10, generator=g, dtype=torch.float64)
    D2 = torch.rand(25, 12, generator=g, dtype=torch.float64)
    X = torch.cat([D1[:, [1, 4]], D2[:, [0]]], dim=1) @ torch.rand(3, 80, generator=g, dtype=torch.float64)
    model = DictionaryNMF(3, dictionary=[D1, D2], counts=[2, 1], init="random", seed=0)
    model.fit(X)
    assert sorted(model.indices.tolist()) == [1, 4, 10]
    ranged = DictionaryNMF(3, dictionary=[D1, D2], counts=[(0, 1), (2, 3)], init="spa", seed=0)
    ranged.fit(X)  # the data want 2 atoms of D1: the range allows only 1
    K = ranged.indices
    assert int((K < 10).sum()) <= 1 and int((K >= 10).sum()) >= 2


def _near_separable(seed=1, m=30, r=5, n=60, noise=0.5):
    """X = W [I, H'] + noise, H' columns on the simplex: a hard near-separable problem."""
    g = torch.Generator().manual_seed(seed)
    W = torch.rand(m, r, generator=g, dtype=torch.float64)
    a = -torch.log(torch.rand(r, n, generator=g, dtype=torch.float64))
    X = W @ torch.cat([torch.eye(r, dtype=torch.float64), a / a.sum(dim=0)], dim=1)
    return (X + noise * X.mean() * torch.randn(X.shape, generator=g, dtype=X.dtype)).clamp_min(0)


def _relative_error(X, W, H):
    return float(torch.linalg.norm(X - W @ H) / torch.linalg.norm(X))


@pytest.fixture(scope="module")
def near_separable_fits():
    X = _near_separable()
    fits = {}
    for method in ("spa", "snpa", "h2nmf", "fgnsr"):
        plain = SeparableNMF(5, method, seed=0, dtype=torch.float64)
        plain.fit(X)
        for solver in ("nmfdico", "proximal"):
            model = DictionaryNMF(5, dictionary=X, init=f"d-{method.upper()}", seed=0, solver=solver)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                result = model.fit(X)
            fits[method, solver] = (plain, model, result)
    return X, fits


@pytest.mark.parametrize("solver", ["nmfdico", "proximal"])
@pytest.mark.parametrize("method", ["snpa", "h2nmf", "fgnsr"])
def test_d_init_starts_from_the_separable_pick_and_does_not_worsen_it(near_separable_fits, method, solver):
    X, fits = near_separable_fits
    plain, model, result = fits[method, solver]
    # on this problem the method picks other columns (or another order) than SPA: a silent
    # SPA fallback would fail the next assertion
    assert plain.indices.tolist() != fits["spa", solver][0].indices.tolist()
    assert result.extra["init_indices"] == plain.indices.tolist()  # X is its own dictionary: same atoms, same order
    assert result.extra["separable"]["indices"] == plain.indices.tolist()
    plain_error = _relative_error(X, plain.W, plain.H.detach())
    assert result.extra["init_relative_error"] == pytest.approx(plain_error, rel=1e-12)
    final_error = _relative_error(X, X[:, model.indices], model.H.detach())  # from the model's own factors
    assert final_error == pytest.approx(result.extra["relative_error"], rel=1e-12)
    assert final_error <= plain_error + 1e-12
    assert (model.H >= 0).all() and len(set(model.indices.tolist())) == 5


@pytest.mark.parametrize("method,solver", [("snpa", "proximal"), ("h2nmf", "proximal"), ("h2nmf", "nmfdico")])
def test_d_init_strictly_improves_where_the_pick_is_poor(near_separable_fits, method, solver):
    # (from this noisy SNPA pick the authors' nmfdico ends above its start and keeps the start)
    X, fits = near_separable_fits
    plain, model, result = fits[method, solver]
    assert not result.extra["kept_init"] and result.converged
    assert _relative_error(X, X[:, model.indices], model.H.detach()) < _relative_error(X, plain.W, plain.H.detach()) - 1e-3


def test_d_init_passes_init_options_to_the_separable_model():
    X = _near_separable()
    plain = SeparableNMF(5, "fgnsr", subsample=20, seed=3, dtype=torch.float64)
    plain.fit(X)
    model = DictionaryNMF(5, dictionary=X, init="d-fgnsr", init_options={"subsample": 20}, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, max_iter=5)
    assert model.result_.extra["init_indices"] == plain.indices.tolist()
    assert model.result_.extra["separable"]["options"] == {"subsample": 20}


def test_d_init_looks_the_method_up_in_the_registry():
    from torchnmf_l1.registry import _SOLVERS, register_solver
    from torchnmf_l1.solvers.separable import SeparableSolver

    @register_solver("test_last_columns", family="separable")
    class LastColumns(SeparableSolver):
        def select(self):
            n = self.X.shape[1]
            return torch.arange(n - self.rank, n, device=self.X.device)

    try:
        D, X, _ = _planted()
        model = DictionaryNMF(4, dictionary=D, init="d-test_last_columns")
        X = torch.cat([X, D[:, [2, 5, 7, 11]]], dim=1)  # the last 4 columns are the true atoms
        model.fit(X)
        assert model.result_.extra["separable"]["indices"] == [120, 121, 122, 123]
        assert model.result_.extra["init_indices"] == [2, 5, 7, 11]
    finally:
        _SOLVERS["separable"].pop("test_last_columns")


def test_d_init_errors():
    from torchnmf_l1.registry import available_solvers

    D, X, _ = _planted()
    registered = re.escape(str(available_solvers("separable")))
    with pytest.raises(ValueError, match=f"registered separable method {registered} .*got 'd-nmf'"):
        DictionaryNMF(2, dictionary=D, init="d-nmf")
    with pytest.raises(TypeError, match="init must be a string, got int 3"):
        DictionaryNMF(2, dictionary=D, init=3)
    with pytest.raises(TypeError, match="'fgnsr' got unexpected option.*'mew'"):
        DictionaryNMF(2, dictionary=D, init="d-fgnsr", init_options={"mew": 1.0})
    with pytest.raises(ValueError, match="subsample must be >= rank=4, got 2"):
        DictionaryNMF(4, dictionary=D, init="d-fgnsr", init_options={"subsample": 2})
    with pytest.raises(ValueError, match=r"init_options are only used by a separable init, got \['subsample'\]"):
        DictionaryNMF(2, dictionary=D, init="random", init_options={"subsample": 10})


def test_dictionary_nmf_bad_input():
    D, X, _ = _planted()
    with pytest.raises(ValueError, match="dictionary has 30 rows but X has 29 rows"):
        DictionaryNMF(4, dictionary=D).fit(X[:29])
    with pytest.raises(ValueError, match="nonnegative, got a minimum entry of -1"):
        DictionaryNMF(2, dictionary=torch.cat([D, -torch.ones(30, 1, dtype=D.dtype)], dim=1))
    with pytest.raises(ValueError, match="rank r = 41 is larger than the number of atoms d = 40"):
        DictionaryNMF(41, dictionary=D)
    with pytest.raises(ValueError, match="init must be 'random' or a registered separable method"):
        DictionaryNMF(2, dictionary=D, init="nmf")
    with pytest.raises(ValueError, match="counts allow between 3 and 3 atoms in all, but rank r = 4"):
        DictionaryNMF(4, dictionary=[D, D], counts=[1, 2])
    with pytest.raises(ValueError, match="same height"):
        DictionaryNMF(2, dictionary=[D, D[:10]], counts=[1, 1])
    model = DictionaryNMF(4, dictionary=D, init="spa")
    model.fit(X)
    before = model.indices.clone(), model.H.detach().clone()
    with pytest.raises(ValueError, match="rows"):
        model.fit(X[:5])
    assert torch.equal(model.indices, before[0]) and torch.equal(model.H.detach(), before[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dictionary_nmf_dtype_preserved(dtype):
    D, X, true = _planted(dtype=dtype)
    model = DictionaryNMF(4, dictionary=D, init="spa")
    model.fit(X)
    assert model.H.dtype == dtype and model.W.dtype == dtype
    assert sorted(model.indices.tolist()) == true


def test_subspace_atoms_matches_bruteforce():
    from torchnmf_l1.kernels import subspace_atoms

    g = torch.Generator().manual_seed(4)
    for trial in range(5):
        D = torch.rand(6, 8, generator=g, dtype=torch.float64)
        Y = torch.rand(6, 10, generator=g, dtype=torch.float64)  # no exact answer: a real search
        residual = {
            K: float(torch.linalg.norm(Y - D[:, list(K)] @ torch.linalg.lstsq(D[:, list(K)], Y).solution))
            for K in itertools.combinations(range(8), 3)
        }
        best = min(residual, key=residual.get)
        assert subspace_atoms(Y, D, 3).tolist() == list(best), trial


def test_subspace_atoms_greedy_finds_planted_atoms():
    from torchnmf_l1.kernels import subspace_atoms

    g = torch.Generator().manual_seed(5)
    D = torch.rand(30, 40, generator=g, dtype=torch.float64)
    true = [2, 17, 33, 38]
    Y = D[:, true] @ torch.rand(4, 6, generator=g, dtype=torch.float64)
    assert subspace_atoms(Y, D, 4, max_subsets=0).tolist() == true  # greedy
    assert subspace_atoms(Y, D, 4).tolist() == true  # exhaustive (91,390 subsets)
    with pytest.raises(ValueError, match="same height"):
        subspace_atoms(Y[:5], D, 4)
    with pytest.raises(ValueError, match=r"r must be an integer in \[1, min\(p, d\) = 30\], got 31"):
        subspace_atoms(Y, D, 31)


def test_relaxed_result_with_a_fixed_delta_recovers_perturbed_atoms():
    """X built from atoms that the dictionary holds only approximately: the relaxed factor
    at a fixed weight lies nearer the true spectra than the snapped atoms, and stays near
    those atoms (a larger weight, nearer still); the snapped result is D(:, K) exactly."""
    g = torch.Generator().manual_seed(5)
    D = torch.rand(40, 15, generator=g, dtype=torch.float64)
    K_true = [1, 6, 11]
    W_true = D[:, K_true] * (1 + 0.15 * (torch.rand(40, 3, generator=g, dtype=torch.float64) - 0.5))
    X = W_true @ torch.rand(3, 60, generator=g, dtype=torch.float64)
    unit = lambda A: A / A.norm(dim=0)  # noqa: E731
    snapped = DictionaryNMF(3, dictionary=D, init="spa", seed=0, solver="proximal")
    snapped.fit(X)
    assert sorted(snapped.indices.tolist()) == K_true
    torch.testing.assert_close(snapped.W, D[:, snapped.indices])
    distances = {}
    for lam in (1e-3, 1e-2):
        model = DictionaryNMF(3, dictionary=D, init="spa", seed=0, delta=lam, result="relaxed", solver="proximal")
        result = model.fit(X)
        assert sorted(model.indices.tolist()) == K_true
        assert result.extra["delta"] == pytest.approx(lam * float((X * X).sum()))
        order = torch.argsort(model.indices)
        U = model.W[:, order]
        assert not torch.allclose(U, unit(D[:, K_true]), atol=1e-6), "the relaxed factor was snapped"
        assert (U - unit(W_true)).norm() < 0.5 * (unit(D[:, K_true]) - unit(W_true)).norm()
        assert result.extra["relative_error"] < snapped.result_.extra["relative_error"]
        distances[lam] = float((U - unit(D[:, K_true])).norm())
    assert distances[1e-2] < distances[1e-3], distances


def test_fixed_delta_and_result_are_checked():
    D = torch.rand(10, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="delta"):
        DictionaryNMF(2, dictionary=D, delta=0.0, solver="proximal")
    with pytest.raises(ValueError, match="result"):
        DictionaryNMF(2, dictionary=D, result="snapped", solver="proximal")


def test_solver_options_reach_the_solver_with_a_separable_init():
    # a separable init has options of its own: they must not replace the dictionary solver's
    g = torch.Generator().manual_seed(1)
    D = torch.rand(20, 8, generator=g, dtype=torch.float64)
    X = D[:, [0, 3]] @ torch.rand(2, 30, generator=g, dtype=torch.float64)
    model = DictionaryNMF(2, dictionary=D, init="spa", inner_sweeps=3, stop_gap=0.2)
    assert model.solver_options == {"inner_sweeps": 3, "stop_gap": 0.2}
    with pytest.raises(TypeError, match="unexpected option"):
        DictionaryNMF(2, dictionary=D, init="snpa", init_options={"subsample": 4}, bogus=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_authors_nmfdico_recovers_planted_atoms_like_the_proximal_solver(seed):
    g = torch.Generator().manual_seed(10 + seed)
    D = torch.rand(30, 40, generator=g, dtype=torch.float64)
    true = sorted(torch.randperm(40, generator=g)[:4].tolist())
    X = D[:, true] @ torch.rand(4, 150, generator=g, dtype=torch.float64)
    model = DictionaryNMF(4, dictionary=D, init="spa", seed=seed, solver="nmfdico")  # the authors' default start
    result = model.fit(X)
    assert sorted(model.indices.tolist()) == true
    assert result.converged and result.n_iter <= 30 and result.extra["relative_error"] < 1e-8
    with pytest.raises(TypeError, match="unexpected option"):
        DictionaryNMF(4, dictionary=D, solver="nmfdico", result="relaxed")  # the proximal solver's option


def test_nmfdico_without_warmup_has_a_finite_weight_that_pins_the_start():
    """No warm-up: U = D(:, K0) exactly, a zero gap. The first weight stays finite, and it is
    large enough to hold U at the starting atoms: the fit ends at K0 (why the warm-up matters,
    experiments/dictionary_ablation.py); with the warm-up the planted atoms are found."""
    g = torch.Generator().manual_seed(4)
    D = torch.rand(20, 12, generator=g, dtype=torch.float64)
    X = D[:, [1, 5, 9]] @ torch.rand(3, 40, generator=g, dtype=torch.float64)
    cold = DictionaryNMF(3, dictionary=D, init="spa", seed=0, solver="nmfdico", warmup=0)
    result = cold.fit(X)
    assert math.isfinite(result.extra["delta"]) and torch.isfinite(cold.H).all()
    assert sorted(cold.indices.tolist()) == sorted(result.extra["init_indices"]) != [1, 5, 9]
    warm = DictionaryNMF(3, dictionary=D, init="spa", seed=0, solver="nmfdico")
    warm.fit(X)
    assert sorted(warm.indices.tolist()) == [1, 5, 9]
