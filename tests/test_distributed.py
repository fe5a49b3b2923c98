"""Data-parallel fit over 2 and 4 local gloo processes equals the single-process fit;
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


def single_process(loss):
    X, W0, H0 = worker.problem()
    if loss == "frobenius":
        model = NMF(worker.R, solver="hals", alpha=0, scale_init=False, dtype=torch.float64)
    else:
        model = NMF(worker.R, loss="kl", solver="mu", dtype=torch.float64)
    result = model.fit(X, W=W0, H=H0, max_iter=worker.ITERS, tol=0, check_every=worker.ITERS)
    return model.W.detach(), model.H.detach(), result.final_objective


@pytest.mark.parametrize("world", [2, 4])
def test_distributed_equals_single_process(world, tmp_path):
    procs, outputs, _ = launch(world, tmp_path, "fit")
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)
    results = torch.load(tmp_path / "result.pt")
    for loss in ("frobenius", "kl"):
        W, H, objective = single_process(loss)
        got = results[loss]
        torch.testing.assert_close(got["W"], W, rtol=1e-10, atol=1e-12, msg=f"{loss}: W differs, {world} ranks")
        torch.testing.assert_close(got["H"], H, rtol=1e-10, atol=1e-12, msg=f"{loss}: H differs, {world} ranks")
        assert got["objective"] == pytest.approx(objective, rel=1e-10)
    # one flat all_reduce per iteration: m r + r^2 (Frobenius) or 2 m r (KL) float64, plus 2 objective scalars
    m, r, it = worker.M, worker.R, worker.ITERS
    assert results["frobenius"]["bytes"] == 8 * (it * (m * r + r * r) + 2)
    assert results["kl"]["bytes"] == 8 * (it * 2 * m * r + 2)


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
