"""Data-parallel fit over 2 and 4 local gloo processes equals the single-process fit
(Frobenius HALS, KL MU, L1 and weighted L1 coordinate descent);
a dead rank makes the others fail with a clear error, not hang."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from torchnmf_l1 import NMF
from torchnmf_l1.distributed import column_range
from torchnmf_l1.kernels import selection_rounds

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker  # noqa: E402

WORKER = Path(__file__).with_name("distributed_worker.py")


pytestmark = pytest.mark.usefixtures("one_thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world, out_dir, mode, timeout=60):
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1", NMF_TEST_TIMEOUT="10")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(out_dir), mode], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    start = time.time()
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, timeout - (time.time() - start)))
            outputs.append(out.decode(errors="replace"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return procs, outputs, time.time() - start


SINGLE_PROCESS = {
    "frobenius-weighted": dict(solver="hals", scale_init=False),
    "frobenius": dict(solver="hals", alpha=0, scale_init=False),
    "kl": dict(loss="kl", solver="mu"),
    "l1": dict(loss="l1", solver="scd", order="HW", safeguard="exact"),  # the data-parallel sCD: H then W, exact
    "wl1": dict(loss="wl1", zero_weight=0.3, l1_reg_W=0.05, l1_reg_H=0.02, solver="scd", order="HW", safeguard="exact"),
}


def single_process(name):
    X, W0, H0, *weights = worker.VARIANTS[name][1]()
    model = NMF(worker.R, dtype=torch.float64, **SINGLE_PROCESS[name])
    result = model.fit(X, W=W0, H=H0, max_iter=worker.ITERS, tol=0, check_every=worker.ITERS,
                       **({"weights": weights[0]} if weights else {}))
    return model.W.detach(), model.H.detach(), result.final_objective


@pytest.mark.parametrize("world", [2, 4])
def test_distributed_equals_single_process(world, tmp_path):
    procs, outputs, _ = launch(world, tmp_path, "fit")
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    results = torch.load(tmp_path / "result.pt")
    for loss in worker.VARIANTS:
        W, H, objective = single_process(loss)
        got = results[loss]
        torch.testing.assert_close(got["W"], W, rtol=1e-10, atol=1e-12, msg=f"{loss}: W differs, {world} ranks")
        torch.testing.assert_close(got["H"], H, rtol=1e-10, atol=1e-12, msg=f"{loss}: H differs, {world} ranks")
        assert got["objective"] == pytest.approx(objective, rel=1e-10)
    # one flat all_reduce per iteration: m r + r^2 (Frobenius) or 2 m r (KL) float64, plus 2 objective scalars
    m, r, it = worker.M, worker.R, worker.ITERS
    assert results["frobenius"]["bytes"] == 8 * (it * (m * r + r * r) + 2)
    assert results["kl"]["bytes"] == 8 * (it * 2 * m * r + 2)
    assert results["frobenius-weighted"]["bytes"] == 8 * (it * (m * r * r + m * r) + 2)
    # L1: per coordinate of W, the total weights (m) and `rounds` all-reduces of 2 P m counts
    # and all-gathers of m pivots, rounds = bit length of the longest local row (+ its zero breakpoint);
    # plus the longest row itself and 2 objective scalars. Nothing of size nnz.
    X_l1 = worker.problem_l1()[0]
    longest = max(int((X_l1[:, a:b] != 0).sum(1).max()) + 1 for a, b in (column_range(worker.N, world, p) for p in range(world)))
    rounds = selection_rounds(longest)
    for loss in ("l1", "wl1"):
        assert results[loss]["bytes"] == 8 * (1 + it * r * (m + rounds * 2 * world * m) + 2)
        assert results[loss]["gathered"] == 8 * it * r * rounds * m


def test_distributed_solver_bad_input(monkeypatch):
    import torch.distributed as dist

    from torchnmf_l1.distributed import DistributedNMFSolver

    monkeypatch.setattr(dist, "is_initialized", lambda: True)  # the checks come before any collective
    W, H = torch.ones(3, 2, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64)
    X = torch.ones(3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="zero_weight must be >= 0, got -0.5"):
        DistributedNMFSolver(X, W, H, loss="wl1", zero_weight=-0.5)
    with pytest.raises(ValueError, match="l1_reg_W must be >= 0"):
        DistributedNMFSolver(X, W, H, loss="l1", l1_reg_W=-1.0)
    bad = X.clone()
    bad[1, 2] = -2.0
    with pytest.raises(ValueError, match="X has negative entries"):
        DistributedNMFSolver(bad, W, H, loss="l1")
    with pytest.raises(ValueError, match=r"W has negative entries \(\d+, minimum -1\); W must be >= 0"):
        DistributedNMFSolver(X, -W, H)
    with pytest.raises(TypeError, match="H must be a dense floating-point torch tensor"):
        DistributedNMFSolver(X, W, H.numpy())
    with pytest.raises(ValueError, match="unknown solver 'als' for distributed"):
        DistributedNMFSolver(X, W, H, solver="als")


def test_dead_rank_raises_clear_error(tmp_path):
    procs, outputs, elapsed = launch(2, tmp_path, "die", timeout=45)
    assert procs[1].returncode == 3, outputs[1]
    report = torch.load(tmp_path / "rank0.pt")
    assert report["type"] == "DistributedFitError"
    assert "rank 0: all_reduce of the W-update statistics failed at iteration 4" in report["error"]
    assert "peer rank died" in report["error"]
    assert elapsed < 40, f"the surviving rank took {elapsed:.1f}s to fail"


def test_column_range_covers_columns_once():
    for n in (1, 7, 60):
        for world in (1, 2, 3, 4):
            ranges = [column_range(n, world, p) for p in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(ranges[p][1] == ranges[p + 1][0] for p in range(world - 1))
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    with pytest.raises(ValueError, match="rank must be in"):
        column_range(10, 2, 2)


def test_solver_needs_initialised_process_group():
    from torchnmf_l1.distributed import DistributedNMFSolver, init_distributed

    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        DistributedNMFSolver(torch.ones(3, 4), torch.ones(3, 2), torch.ones(2, 4))
    with pytest.raises(ValueError, match="backend must be 'gloo', 'nccl' or 'mpi', got 'tcp'"):
        init_distributed("tcp")
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        init_distributed("gloo", timeout=0)
