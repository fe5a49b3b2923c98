"""Out-of-core NMF: streaming HALS equals in-memory HALS, online HALS fits planted data,
the memory budget is respected (measured), checkpoints resume to the identical result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from torchnmf_l1 import NMF, StreamingNMF, kernels
from torchnmf_l1.blocks import BlockSource, block_size_for_budget
from torchnmf_l1.checkpoint import load_checkpoint

M, N, R = 30, 210, 4


pytestmark = pytest.mark.usefixtures("one_thread")


def planted(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(M, R, generator=g, dtype=dtype) @ torch.rand(R, N, generator=g, dtype=dtype)
    W0 = torch.rand(M, R, generator=g, dtype=dtype)
    H0 = torch.rand(R, N, generator=g, dtype=dtype)
    return X, W0, H0


def in_memory(X, W0, H0, iters):
    model = NMF(R, solver="hals", alpha=0, scale_init=False, dtype=X.dtype)
    result = model.fit(X, W=W0, H=H0, max_iter=iters, tol=0, check_every=1)
    return model.W.detach(), model.H.detach(), result


def sources(X, tmp_path):
    """The same matrix as every accepted kind of source."""
    import h5py

    array = X.numpy()
    np.save(tmp_path / "x.npy", np.asfortranarray(array))
    np.save(tmp_path / "c.npy", np.ascontiguousarray(array))
    h5 = h5py.File(tmp_path / "x.h5", "w")
    h5.create_dataset("x", data=array)
    return {
        "mmap_fortran": (np.load(tmp_path / "x.npy", mmap_mode="r"), None),
        "mmap_c": (np.load(tmp_path / "c.npy", mmap_mode="r"), None),
        "h5py": (h5["x"], None),
        "callable": (lambda a, b: array[:, a:b], (M, N)),
        "list": ([array[:, a:a + 50] for a in range(0, N, 50)], (M, N)),
        "torch": (X, None),
    }


def test_streaming_equals_in_memory_every_source(tmp_path):
    X, W0, H0 = planted()
    W_ref, H_ref, ref = in_memory(X, W0, H0, 8)
    for kind, (source, shape) in sources(X, tmp_path).items():
        for block_size in ((7, N) if kind == "torch" else (37,)):
            model = StreamingNMF(R, block_size=block_size, dtype=torch.float64)
            result = model.fit(source, shape=shape, W=W0, H=H0, max_iter=8, tol=0, check_every=1)
            msg = f"source {kind}, block_size {block_size}"
            torch.testing.assert_close(model.W, W_ref, rtol=1e-11, atol=1e-13, msg=msg)
            torch.testing.assert_close(model.H, H_ref, rtol=1e-11, atol=1e-13, msg=msg)
            np.testing.assert_allclose(result.objective, ref.objective, rtol=1e-9, err_msg=msg)


def test_streaming_random_init_matches_nmf_seed():
    X, _, _ = planted()
    ref = NMF(R, solver="hals", alpha=0, scale_init=False, init="random", seed=5, dtype=torch.float64)
    ref.fit(X, max_iter=4, tol=0)
    model = StreamingNMF(R, block_size=64, dtype=torch.float64, seed=5)
    model.fit(X.numpy(), max_iter=4, tol=0)
    torch.testing.assert_close(model.W, ref.W.detach(), rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(model.H, ref.H.detach(), rtol=1e-11, atol=1e-13)


def test_streaming_float32_objective_decreases():
    X, W0, H0 = planted(torch.float32)
    result = StreamingNMF(R, block_size=50).fit(X.numpy(), W=W0, H=H0, max_iter=20, tol=0)
    obj = np.array(result.objective)
    assert np.all(np.diff(obj) <= 1e-5 * obj[:-1]), obj
    assert obj[-1] < 0.05 * obj[0]


def test_online_fits_planted_data_and_forgetting_factor():
    X, W0, _ = planted()
    blocks = [X[:, a:a + 30].numpy() for a in range(0, N, 30)]
    for rho in (1.0, 0.8):
        model = StreamingNMF(R, solver="online", dtype=torch.float64, rho=rho, inner_sweeps=10)
        result = model.fit(blocks, shape=(M, N), W=W0, max_iter=6, tol=0)
        H = X.new_zeros(R, N)
        kernels.hals_nnls_(H, kernels.wt_x(model.W, X), kernels.gram(model.W), max_sweeps=200, delta=0.0)
        error = torch.linalg.norm(X - model.W @ H) / torch.linalg.norm(X)
        start = torch.linalg.norm(X - W0 @ torch.linalg.lstsq(W0, X).solution.clamp_min(0)) / torch.linalg.norm(X)
        assert error < 0.05 and error < 0.2 * start, (rho, float(error), float(start))
        obj = np.array(result.objective[1:])
        assert obj[-1] < obj[0], obj
    with pytest.raises(ValueError, match=r"option 'rho' must be a number in \(0, 1\], got 1.5"):
        StreamingNMF(R, solver="online", rho=1.5)
    one_shot = (b for b in blocks)
    with pytest.raises(ValueError, match="one-shot iterator and was already read once"):
        StreamingNMF(R, solver="online", dtype=torch.float64).fit(one_shot, shape=(M, N), W=W0, max_iter=2, tol=0)


def test_block_size_for_budget_arithmetic_and_errors():
    s = 8
    b = block_size_for_budget(10_000_000, 200, 10, torch.float64)
    fixed = 2 * (200 * 10 + 100) * s + (1 << 20)
    per_column = 200 * s + 200 * s + 4 * 10 * s
    assert b == (10_000_000 - fixed) // per_column
    assert block_size_for_budget(10_000_000, 200, 10, torch.float64, device_type="cuda") < b
    with pytest.raises(ValueError, match="memory_budget=1000 bytes is too small"):
        block_size_for_budget(1000, 200, 10, torch.float64)
    with pytest.raises(ValueError, match="option 'memory_budget' must be None or an integer >= 1, got -5"):
        StreamingNMF(3, memory_budget=-5).fit(np.ones((4, 6)), max_iter=1)
    with pytest.raises(ValueError, match="give memory_budget or block_size, not both"):
        StreamingNMF(3, memory_budget=10**6, block_size=10)
    with pytest.raises(TypeError, match="got unexpected option"):
        StreamingNMF(3, rho=0.5)
    X, W0, H0 = planted()
    bad = X.numpy().copy()
    bad[3, 100] = -1.0
    model = StreamingNMF(R, block_size=40, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"X\[:, 80:120\] has negative entries \(minimum -1"):
        model.fit(bad, W=W0, H=H0, max_iter=2)
    assert not model.fitted, "a failed fit must not leave factors behind"
    with pytest.raises(ValueError, match=r"X\[:, 80:120\] has negative entries"):
        StreamingNMF(R, block_size=40, seed=0).fit(bad, max_iter=2)
    with pytest.raises(TypeError, match="X must be an array"):
        BlockSource(3.0)
    with pytest.raises(ValueError, match="needs shape"):
        BlockSource(lambda a, b: None)


def test_memory_budget_respected(tmp_path):
    """Peak resident-set growth of a fit of a 128 MB memory-mapped file with a 16 MB budget.

    Method (child process, see tests/budget_worker.py): ru_maxrss before/after the fit.
    Allowed: budget + factors + 4 MiB for the interpreter and allocator; the control (a
    plain np.array of the mapped file) must exceed that bound, so the test can fail.
    """
    rng = np.random.default_rng(0)
    n = 80_000
    X = rng.random((200, 5)) @ rng.random((5, n))
    path = tmp_path / "cube.npy"
    np.save(path, np.asfortranarray(X))
    del X
    budget = 16 * 2**20
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("budget_worker.py")), str(path), str(budget), "5"],
                         capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    growth, factors, control, block_size = (float(v) for v in out.stdout.split()[:4])
    bound = budget + factors + 4 * 2**20
    assert block_size < n
    assert growth <= bound, f"peak RSS grew by {growth / 2**20:.1f} MiB > {bound / 2**20:.1f} MiB"
    assert control > bound, "the measurement does not see a full read of the file"


def test_checkpoint_resume_identical_and_refusals(tmp_path):
    X, W0, H0 = planted()
    array = X.numpy()
    full = StreamingNMF(R, block_size=40, dtype=torch.float64)
    full.fit(array, W=W0, H=H0, max_iter=9, tol=0)

    path = tmp_path / "fit.ckpt"

    class Crash(Exception):
        pass

    def crash_at_7(info):
        if info.iteration == 7:
            raise Crash

    interrupted = StreamingNMF(R, block_size=40, dtype=torch.float64)
    with pytest.raises(Crash):
        interrupted.fit(array, W=W0, H=H0, max_iter=9, tol=0, checkpoint=path, checkpoint_every=3,
                        callbacks=[crash_at_7])
    assert path.exists() and not Path(str(path) + ".tmp").exists()
    state = load_checkpoint(path, shape=(M, N), rank=R)
    assert state["iteration"] == 6

    resumed = StreamingNMF(R, block_size=40, dtype=torch.float64)
    result = resumed.fit(array, max_iter=9, tol=0, checkpoint=path, checkpoint_every=3, resume=True)
    assert result.extra["resumed_from"] == 6 and result.n_iter == 9
    assert torch.equal(resumed.W, full.W) and torch.equal(resumed.H, full.H), "resumed run differs"

    with pytest.raises(ValueError, match=r"is for data of shape \(30, 210\), got data of shape \(30, 200\)"):
        StreamingNMF(R, block_size=40).fit(array[:, :200], max_iter=9, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="is for rank 4, got rank 3"):
        StreamingNMF(3, block_size=40).fit(array, max_iter=9, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match="written by solver 'hals', got solver 'online'"):
        StreamingNMF(R, solver="online", block_size=40).fit(array, W=W0, max_iter=9, checkpoint=path, resume=True)
    state["format_version"] = 999
    torch.save(state, path)
    with pytest.raises(ValueError, match="has format version 999, this torchnmf_l1 .* reads version 1"):
        StreamingNMF(R, block_size=40).fit(array, max_iter=9, checkpoint=path, resume=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        StreamingNMF(R, block_size=40).fit(array, max_iter=9, checkpoint=path, resume=True)


def test_online_checkpoint_resume_identical(tmp_path):
    X, W0, _ = planted()
    blocks = [X[:, a:a + 30].numpy() for a in range(0, N, 30)]
    full = StreamingNMF(R, solver="online", dtype=torch.float64, rho=0.9)
    full.fit(blocks, shape=(M, N), W=W0, max_iter=4, tol=0)
    path = tmp_path / "online.ckpt"
    first = StreamingNMF(R, solver="online", dtype=torch.float64, rho=0.9)
    first.fit(blocks, shape=(M, N), W=W0, max_iter=2, tol=0, checkpoint=path, checkpoint_every=2, warn=False)
    resumed = StreamingNMF(R, solver="online", dtype=torch.float64, rho=0.9)
    resumed.fit(blocks, shape=(M, N), max_iter=4, tol=0, checkpoint=path, resume=True)
    assert torch.equal(resumed.W, full.W)


@pytest.mark.cuda
def test_streaming_cuda_equals_cpu():
    X, W0, H0 = planted()
    cpu = StreamingNMF(R, block_size=37, dtype=torch.float64)
    cpu.fit(X.numpy(), W=W0, H=H0, max_iter=5, tol=0)
    for H_device in ("cuda", "cpu"):
        gpu = StreamingNMF(R, block_size=37, dtype=torch.float64, device="cuda", H_device=H_device)
        gpu.fit(X.numpy(), W=W0, H=H0, max_iter=5, tol=0)
        torch.testing.assert_close(gpu.W.cpu(), cpu.W, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(gpu.H.cpu(), cpu.H, rtol=1e-9, atol=1e-11)
    torch.cuda.reset_peak_memory_stats()
    budget = 2**22
    base = torch.cuda.memory_allocated()
    model = StreamingNMF(R, memory_budget=budget, dtype=torch.float64, device="cuda")
    model.fit(np.asfortranarray(np.tile(X.numpy(), (1, 200))), max_iter=2, tol=0)
    factors = (model.W.numel() + model.H.numel()) * 8
    assert torch.cuda.max_memory_allocated() - base <= budget + factors
