"""The outer loop's stopping rules on scripted objective sequences."""

import pytest
import torch

from torchnmf_l1 import ConvergenceWarning, run_fit


class ScriptedSolver:
    """A stand-in solver whose objective follows a given sequence, one value per step."""

    name = "scripted"

    def __init__(self, values):
        self.values = list(values)
        self.k = 0

    def step(self):
        self.k += 1

    def objective(self):
        return torch.tensor(self.values[min(self.k, len(self.values) - 1)], dtype=torch.float64)


def test_an_increase_is_not_convergence():
    # The objective rises by 10 % at step 2 (a restart of an accelerated method), then keeps falling.
    values = [10.0, 9.0, 9.9, 8.0, 7.0, 6.0]
    result = run_fit(ScriptedSolver(values), max_iter=5, tol=1e-3, check_every=1, warn=False)
    assert not result.converged
    assert result.n_iter == 5


def test_stagnation_is_convergence():
    values = [10.0, 5.0, 4.99999, 4.99998]
    result = run_fit(ScriptedSolver(values), max_iter=3, tol=1e-4, check_every=1)
    assert result.converged and result.n_iter == 2


def test_round_off_noise_at_an_exact_fit_is_convergence():
    # Relative changes are huge at 1e-27, but negligible against the initial objective.
    values = [1e3, 1e-27, 3e-27, 2e-27]
    result = run_fit(ScriptedSolver(values), max_iter=3, tol=1e-6, check_every=1)
    assert result.converged and result.n_iter == 2


def test_max_iter_warns():
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        result = run_fit(ScriptedSolver([4.0, 3.0, 2.0, 1.0]), max_iter=3, tol=1e-6, check_every=1)
    assert not result.converged and result.objective == [4.0, 3.0, 2.0, 1.0]


@pytest.mark.parametrize("kwargs, match", [({"max_iter": -1}, "max_iter"), ({"tol": -1.0}, "tol"),
                                            ({"check_every": 0}, "check_every"), ({"time_limit": 0}, "time_limit")])
def test_bad_loop_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_fit(ScriptedSolver([1.0]), **kwargs)


@pytest.mark.parametrize(
    "shape, rank, replicates, expected",
    [
        ((200, 100), 5, 100, 1),  # replicates of one X: one problem's 4e5 flops an iteration
        ((100, 200, 100), 5, None, 2),  # a batch of 100 matrices: 4e7 flops of batched GEMMs
        ((200, 100), 5, None, 1),
        ((500, 400), 20, None, 2),  # 1.6e7 flops: the process's setting
    ],
)
def test_auto_threads_follow_the_parallel_work(shape, rank, replicates, expected):
    from torchnmf_l1 import NMF

    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        X = torch.rand(*shape, dtype=torch.float64)
        NMF(rank, solver="hals", n_replicates=replicates, seed=0).fit(
            X, max_iter=1, tol=0, warn=False, callbacks=[lambda info: seen.append(torch.get_num_threads())])
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert seen == [expected]
    assert after == 2  # restored
