"""HALS with Ang and Gillis's extrapolation (``solver="hals", beta0 > 0``).

Against a literal NumPy transcription of the authors' scheme (their FroNMF loop with one
HALS sweep per factor), and the solver contract of tests/test_contract.py run on the
extrapolated variant: monotone objective equal to the state's, zero host syncs in a step,
nothing on the default device, a batch equal to its problems alone (its one compiled
graph is tested in tests/test_contract.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF, kernels, run_fit
from torchnmf_l1.diagnostics import count_syncs
from torchnmf_l1.problem import FactorState
from torchnmf_l1.registry import get_solver

from test_contract import _copy_state, _slice_state, nmf_cases
from test_solvers import make_problem, start

F64 = torch.float64
EXTRAPOLATED = dict(beta0=0.5)


# ----------------------------------------------------------------------------- the authors' scheme, literally
def _hals_sweep(H, A, B):
    H = H.copy()
    for k in range(H.shape[0]):
        H[k] = np.maximum(0.0, (A[k] - B[k] @ H + B[k, k] * H[k]) / B[k, k])
    sums = H.sum(axis=1)  # a row that became zero is revived as the solver does
    H[sums <= 0] += sums.max() * np.finfo(H.dtype).eps / H.shape[1]
    return H


def _balance(W, H):
    w, h = np.linalg.norm(W, axis=0), np.linalg.norm(H, axis=1)
    ok = (w > 0) & (h > 0)
    d = np.where(ok, np.sqrt(h / np.where(ok, w, 1.0)), 1.0)
    return W * d, H / d[:, None]


def reference_extrapolated_hals(X, W, H, iterations, beta0=0.5, eta=1.5, gamma=1.01, gamma_bar=1.005):
    """Ang and Gillis's FroNMF with HALS (one sweep), as a loop: returns the best pair, the
    best objective after each iteration and the number of restarts."""
    W = W * (np.sum((X @ H.T) * W) / np.sum((H @ H.T) * (W.T @ W)))
    W, H = _balance(W, H)
    W_y, H_y = W.copy(), H.copy()
    beta, beta_previous, beta_max = beta0, beta0, 1.0
    objective = lambda W, H: 0.5 * np.linalg.norm(X - W @ H) ** 2  # noqa: E731
    last = best = objective(W, H)
    W_best, H_best, history, restarts = W, H, [best], 0
    for _ in range(iterations):
        H_n = _hals_sweep(H_y, W_y.T @ X, W_y.T @ W_y)
        H_y = np.maximum(0.0, H_n + beta * (H_n - H))
        W_n = _hals_sweep(W_y.T, H_y @ X.T, H_y @ H_y.T).T
        W_y = W_n + beta * (W_n - W)
        value = objective(W_n, H_y)
        if value > last:  # restart from the last accepted pair, balanced
            W, H = _balance(W, H)
            W_y, H_y = W.copy(), H.copy()
            beta_max, beta_previous, beta = beta_previous, beta, beta / eta
            restarts += 1
        else:
            W, H = W_n, H_n
            beta_previous, beta, beta_max = beta, min(beta_max, beta * gamma), min(1.0, beta_max * gamma_bar)
        last = value
        if value <= best:
            W_best, H_best, best = W_n, H_y, value
        history.append(best)
    return W_best, H_best, np.array(history), restarts


def _run(X, W0, H0, iterations, **options):
    problem = make_problem(X)
    solver = get_solver("hals")(problem, FactorState(torch.tensor(W0), torch.tensor(H0)), alpha=0.0, **options)
    values = [float(solver.objective())]
    with torch.no_grad():
        for _ in range(iterations):
            solver.step()
            values.append(float(solver.objective()))
    return solver, np.array(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extrapolated_hals_equals_the_authors_scheme(seed):
    rng = np.random.default_rng(seed)
    X = rng.random((30, 6)) @ rng.random((6, 25)) + 0.1 * rng.random((30, 25))
    W0, H0 = start(30, 25, 4, seed=seed + 10)
    W_ref, H_ref, history, restarts = reference_extrapolated_hals(X, W0, H0, 40)
    assert restarts > 0  # the restart branch is exercised
    solver, values = _run(X, W0, H0, 40, **EXTRAPOLATED)
    np.testing.assert_allclose(solver.W.numpy(), W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(solver.H.numpy(), H_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(values, history, rtol=1e-9)


def test_options_of_the_rule_are_the_authors():
    rng = np.random.default_rng(3)
    X = rng.random((20, 15))
    W0, H0 = start(20, 15, 3, seed=4)
    W_ref, _, _, _ = reference_extrapolated_hals(X, W0, H0, 25, beta0=0.3, eta=2.0, gamma=1.1, gamma_bar=1.05)
    solver, _ = _run(X, W0, H0, 25, beta0=0.3, eta=2.0, gamma=1.1, gamma_bar=1.05)
    np.testing.assert_allclose(solver.W.numpy(), W_ref, rtol=1e-9, atol=1e-12)


def test_beta0_zero_is_plain_hals():
    rng = np.random.default_rng(5)
    X = rng.random((20, 15))
    W0, H0 = start(20, 15, 3, seed=6)
    plain, _ = _run(X, W0, H0, 10)
    zero, _ = _run(X, W0, H0, 10, beta0=0.0)
    assert not zero.extrapolate
    torch.testing.assert_close(zero.W, plain.W, rtol=0, atol=0)


def test_the_tracked_objective_is_the_states():
    """The objective the fit loop sees is the state's, never rising (the best pair so far)."""
    for label, problem, state in nmf_cases(get_solver("hals"), F64):
        solver = get_solver("hals")(problem, _copy_state(state), **EXTRAPOLATED)
        values = []
        with torch.no_grad():
            for _ in range(15):
                solver.step()
                values.append(float(solver.objective()))
                exact = float(problem.objective(solver.W, solver.H))
                assert values[-1] == pytest.approx(exact, rel=1e-9, abs=1e-12), label
        assert np.all(np.diff(values) <= 1e-12 * np.abs(values[:-1])), label
        assert bool((solver.W >= 0).all()) and bool((solver.H >= 0).all()), label


def test_bad_options_name_what_was_wrong():
    problem = make_problem(np.ones((3, 3)))
    state = FactorState(torch.ones(3, 1, dtype=F64), torch.ones(1, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"eta > gamma >= gamma_bar.*eta=1.5, gamma=2.0, gamma_bar=1.005"):
        get_solver("hals")(problem, state, beta0=0.5, gamma=2.0)
    with pytest.raises(ValueError, match=r"option 'beta0' must be a number in \[0, 1\], got 1.5"):
        get_solver("hals")(problem, state, beta0=1.5)
    with pytest.raises(ValueError, match=r"option 'eta' must be a number > 1, got 1"):
        get_solver("hals")(problem, state, eta=1)


# ----------------------------------------------------------------------------- the contract, extrapolated
def _extrapolated(problem, state):
    return get_solver("hals")(problem, _copy_state(state), **EXTRAPOLATED)


def test_step_never_reads_the_device():
    for label, problem, state in nmf_cases(get_solver("hals"), F64) + nmf_cases(get_solver("hals"), F64, batch=3):
        solver = _extrapolated(problem, state)
        with torch.no_grad():
            solver.step()
            with count_syncs() as syncs:
                solver.step()
                solver.step()
        assert syncs.count == 0, f"{label}: step() read the device: {syncs.events}"


def test_no_allocation_on_the_default_device():
    for label, problem, state in nmf_cases(get_solver("hals"), F64, batch=2):
        torch.set_default_device("meta")
        try:
            solver = _extrapolated(problem, state)
            with torch.no_grad():
                for _ in range(3):
                    solver.step()
            output = solver.finish()
        finally:
            torch.set_default_device(None)
        assert all(F.device.type == "cpu" for F in output.factors.values()), label


def test_batch_equals_its_problems_one_by_one():
    """Each problem of a batch (its own X, its own stop) ends as its own fit from the same start."""
    batch = 3
    for index, (label, problem, state) in enumerate(nmf_cases(get_solver("hals"), F64, batch=batch)):
        solver = _extrapolated(problem, state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_fit(solver, max_iter=60, tol=1e-3, check_every=2)
        out = solver.finish()
        for b in range(batch):
            _, single_problem, _ = nmf_cases(get_solver("hals"), F64, seed=b)[index]
            single = _extrapolated(single_problem, _slice_state(state, b))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single_result = run_fit(single, max_iter=60, tol=1e-3, check_every=2)
            assert single_result.n_iter == result.n_iter_per_problem[b], f"{label} problem {b}"
            reference = single.finish()
            for name in ("W", "H"):
                torch.testing.assert_close(out.factors[name][b], reference.factors[name], rtol=1e-6, atol=1e-10,
                                           msg=f"{label}: problem {b}")


def test_float32_agrees_with_float64():
    runs = {}
    for dtype in (torch.float32, F64):
        runs[dtype] = []
        for _, problem, state in nmf_cases(get_solver("hals"), dtype):
            solver = _extrapolated(problem, state)
            with torch.no_grad():
                for _ in range(5):
                    solver.step()
            runs[dtype].append(float(solver.objective()))
    np.testing.assert_allclose(runs[torch.float32], runs[F64], rtol=5e-3)


def test_replicates_equal_single_fits():
    """NMF(n_replicates=R, beta0=0.5): replicate k is the single fit from the k-th start."""
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((60, 5)) @ rng.random((5, 40)) + 0.05 * rng.random((60, 40)))
    options = dict(max_iter=80, tol=0, check_every=80, warn=False)
    model = NMF(5, n_replicates=4, init="random", seed=3, beta0=0.5)
    model.fit(X, **options)
    for k in range(4):
        single = NMF(5, init="random", seed=3 + k, beta0=0.5)
        single.fit(X, **options)
        torch.testing.assert_close(model.W[k], single.W, rtol=1e-6, atol=1e-10)
        torch.testing.assert_close(model.H[k], single.H, rtol=1e-6, atol=1e-10)


def test_lower_errors_than_plain_hals_on_the_benchmark_problem():
    """bench_batched.py's problem (200 x 100, a rank-5 X plus 5 % noise), 20 random starts, 100
    iterations: the extrapolated fits end lower than plain HALS in most starts."""
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((200, 5)) @ rng.random((5, 100)) + 0.05 * rng.random((200, 100)))
    options = dict(max_iter=100, tol=0, check_every=100, warn=False)
    values = {}
    for beta0 in (0.0, 0.5):
        model = NMF(5, n_replicates=20, init="random", seed=1, beta0=beta0)
        model.fit(X, **options)
        values[beta0] = np.asarray(model.replicate_objectives_)
    assert np.median(values[0.5]) < 0.9 * np.median(values[0.0])
    assert np.mean(values[0.5] < values[0.0]) >= 0.6


def test_momentum_rule_kernel():
    """The parameter rule alone, per problem: a rise restarts, a fall grows beta to its bound."""
    state = kernels.extrapolation_start(torch.tensor([1.0, 1.0], dtype=F64), 0.5)
    state, rise = kernels.extrapolation_update(state, torch.tensor([2.0, 0.5], dtype=F64), eta=1.5, gamma=1.01,
                                               gamma_bar=1.005)
    assert rise.tolist() == [True, False]
    torch.testing.assert_close(state.beta, torch.tensor([0.5 / 1.5, min(1.0, 0.5 * 1.01)], dtype=F64))
    torch.testing.assert_close(state.beta_max, torch.tensor([0.5, 1.0], dtype=F64))
    state, rise = kernels.extrapolation_update(state, torch.tensor([1.5, 0.4], dtype=F64), eta=1.5, gamma=1.01,
                                               gamma_bar=1.005)
    assert rise.tolist() == [False, False]  # compared with the last (rejected) value 2.0
    torch.testing.assert_close(state.beta, torch.tensor([min(0.5, 0.5 / 1.5 * 1.01), 0.505 * 1.01], dtype=F64))
