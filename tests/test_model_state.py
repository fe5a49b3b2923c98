"""Defects a user hit with model state, dtype, device and the stopping rule (issue 18)."""

import pytest
import torch

import torchnmf_l1
from torchnmf_l1 import NMF, NonnegativeCP, StreamingNMF, run_fit


def _planted(m=40, n=30, r=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, r, generator=g, dtype=torch.float64) @ torch.rand(r, n, generator=g, dtype=torch.float64)


def test_online_streaming_runs_every_pass_it_is_asked_for():
    # the first pass's objective is finite: the fit must not stop at pass 1 as "converged"
    X = _planted(50, 80, 5)
    result = StreamingNMF(5, solver="online", seed=0).fit(X, max_iter=3, tol=1e-4, warn=False)
    assert result.n_iter == 3 and not result.converged
    assert all(torch.isfinite(torch.tensor(v)) for v in result.objective[1:])


def test_cp_state_loads_into_a_fresh_model():
    g = torch.Generator().manual_seed(0)
    T = torch.rand(5, 6, 7, generator=g, dtype=torch.float64)
    fitted = NonnegativeCP(3, seed=0)
    fitted.fit(T, max_iter=5, warn=False)
    fresh = NonnegativeCP(3)
    fresh.load_state_dict(fitted.state_dict())
    assert torch.equal(fresh.reconstruct(), fitted.reconstruct())
    with pytest.raises(RuntimeError, match="rank mismatch.*state has rank \\[3\\].*has rank 2"):
        NonnegativeCP(2).load_state_dict(fitted.state_dict())


def test_a_state_of_another_rank_is_refused():
    fitted = NMF(3, seed=0)
    fitted.fit(_planted(20, 10), max_iter=5, warn=False)
    model = NMF(4)
    with pytest.raises(RuntimeError, match=r"rank mismatch for W: the state has rank 3 \(shape \(20, 3\)\), this NMF has rank 4"):
        model.load_state_dict(fitted.state_dict())
    same = NMF(3)
    same.load_state_dict(fitted.state_dict())  # data dimensions may differ, the rank may not
    assert same.W.shape == (20, 3) and torch.equal(same.W, fitted.W)


class _Scripted:
    name = "scripted"

    def __init__(self, values):
        self.values, self.k = values, 0

    def step(self):
        self.k += 1

    def objective(self):
        return torch.tensor(self.values[min(self.k, len(self.values) - 1)], dtype=torch.float64)


def test_a_tiny_increase_is_not_convergence():
    # 9.0 -> 9.0000005 is a relative increase of 5.6e-8, far beyond float64 round-off
    result = run_fit(_Scripted([10.0, 9.0, 9.0000005, 8.0, 7.0]), max_iter=4, tol=1e-4, check_every=1, warn=False)
    assert not result.converged and result.n_iter == 4


def test_dtype_none_keeps_the_data_dtype():
    for dtype in (torch.float64, torch.float32):
        model = NMF(3, seed=0)
        model.fit(_planted().to(dtype), max_iter=3, warn=False)
        assert model.W.dtype == dtype and model.H.dtype == dtype


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the message of a machine without CUDA")
@pytest.mark.parametrize("model", [lambda: NMF(3, device="cuda"), lambda: NonnegativeCP(3, device="cuda"),
                                   lambda: StreamingNMF(3, device="cuda")])
def test_cuda_without_cuda_is_a_clear_error(model):
    with pytest.raises(ValueError, match="device='cuda': CUDA is not available"):
        model()


def test_reconstruct_is_detached_and_equals_forward():
    model = NMF(3, seed=0)
    model.fit(_planted(), max_iter=3, warn=False)
    rec = model.reconstruct()
    assert not rec.requires_grad and torch.equal(rec, model().detach())
    assert torchnmf_l1.ConvergenceWarning.__name__ == "ConvergenceWarning"
