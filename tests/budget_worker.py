"""Child process of tests/test_streaming.py::test_memory_budget_respected.

Usage: python tests/budget_worker.py PATH.npy BUDGET RANK
Prints three numbers (bytes): peak resident-set growth of a streaming fit of the
memory-mapped PATH with the budget, the factors' bytes, and the growth of loading the
whole file (the control that shows the measurement sees a non-streaming read).
Method: the kernel's peak resident set of this process (``VmHWM`` in /proc/self/status),
reset by writing 5 to /proc/self/clear_refs just before each measured phase, minus the
resident set at the reset; after a warm-up fit that initialises torch's allocator and
thread pool. (``ru_maxrss`` is not usable: Linux carries it over from the forking parent.)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from torchnmf_l1 import StreamingNMF  # noqa: E402


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def peak() -> int:
    return _status("VmHWM")


def main(path, budget, rank):
    torch.set_num_threads(1)
    X = np.load(path, mmap_mode="r")
    m, n = X.shape
    warm = np.random.default_rng(0).random((m, 64))
    StreamingNMF(rank, block_size=16, dtype=torch.float64, seed=0).fit(warm, max_iter=2, tol=0)
    before = reset_peak()
    model = StreamingNMF(rank, memory_budget=budget, dtype=torch.float64, seed=0)
    model.fit(X, max_iter=2, tol=0)
    growth = peak() - before
    factors = (model.W.numel() + model.H.numel()) * 8
    before = reset_peak()
    full = np.array(X)
    control = peak() - before
    print(growth, factors, control, model.block_size_, float(full[0, 0] >= 0))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
