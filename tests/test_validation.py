"""Bad input at the public functions that take plain tensors: a ValueError or TypeError that
names the argument, never torch's own message, a raw exception or a silent result."""

import math
import os

import numpy as np
import pytest
import torch

from torchnmf_l1 import NNLSLayer, StreamingNMF, h2nmf_clustering, ksparse_nnls

F64 = torch.float64
g = torch.Generator().manual_seed(0)
X = torch.rand(12, 4, generator=g, dtype=F64) @ torch.rand(4, 10, generator=g, dtype=F64)
W = torch.rand(12, 3, generator=g, dtype=F64)
H = torch.rand(3, 10, generator=g, dtype=F64)


def _with(t, value):
    t = t.clone()
    t.view(-1)[0] = value
    return t


def bad_matrices(M):
    """(label, value, error type, message pattern) for a matrix argument."""
    return [
        ("None", None, TypeError, "must be a torch tensor or a numpy array, got NoneType"),
        ("a string", "abc", TypeError, "must be a torch tensor or a numpy array, got str"),
        ("strings", [["a"]], TypeError, "must be numeric"),
        ("1-D", M[0], ValueError, "must be 2-D, got a 1-D input"),
        ("3-D", M[None], ValueError, "must be 2-D, got a 3-D input"),
        ("empty", M[:0], ValueError, "is empty"),
        ("NaN", _with(M, math.nan), ValueError, "NaN or infinite values \\(1 entries\\)"),
        ("inf", _with(M, math.inf), ValueError, "NaN or infinite"),
        ("negative", _with(M, -1.0), ValueError, "negative entries"),
        ("complex", M.to(torch.complex128), TypeError, "complex"),
        ("bool", M > 0.5, TypeError, "boolean"),
        ("sparse", M.to_sparse(), TypeError, "must be a dense tensor"),
        ("meta", M.to("meta"), ValueError, "meta device"),
    ]


@pytest.mark.parametrize("label, value, error, match", bad_matrices(X), ids=lambda v: v if isinstance(v, str) else "")
def test_h2nmf_clustering_refuses_bad_x(label, value, error, match):
    with pytest.raises(error, match="X " + match if match.startswith("must") or match.startswith("is") else match):
        h2nmf_clustering(value, 3)


@pytest.mark.parametrize("value, error", [(0, ValueError), (11, ValueError), (1.5, TypeError), (True, TypeError),
                                          ("3", TypeError), (None, TypeError)])
def test_h2nmf_clustering_refuses_bad_n_clusters(value, error):
    with pytest.raises(error, match="option 'n_clusters' must be an integer in \\[1, 10\\]"):
        h2nmf_clustering(X, value)


def test_h2nmf_clustering_takes_integer_and_numpy_data():
    labels = h2nmf_clustering(X, 3).labels
    assert torch.equal(h2nmf_clustering(X.numpy(), 3).labels, labels)
    counts = (X * 1000).round().long()
    assert h2nmf_clustering(counts, 3).labels.shape == (10,)


@pytest.mark.parametrize("which", ["W", "X"])
@pytest.mark.parametrize("label, value, error, match", bad_matrices(W), ids=lambda v: v if isinstance(v, str) else "")
def test_ksparse_nnls_refuses_bad_matrices(which, label, value, error, match):
    args = (value, X, 2) if which == "W" else (W, value, 2)
    with pytest.raises(error, match=match):
        ksparse_nnls(*args)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"k": 0}, ValueError, "option 'k' must be an integer >= 1, got 0"),
    ({"k": 1.5}, TypeError, "option 'k'"),
    ({"k": 4}, ValueError, "k must be <= r = 3"),
    ({"method": "magic"}, ValueError, "option 'method' must be one of 'exact', 'greedy'"),
    ({"max_sweeps": 0}, ValueError, "option 'max_sweeps' must be an integer >= 1"),
    ({"max_sweeps": True}, TypeError, "option 'max_sweeps'"),
])
def test_ksparse_nnls_refuses_bad_options(kwargs, error, match):
    options = {"k": 2, "method": "greedy"} | kwargs
    k = options.pop("k")
    with pytest.raises(error, match=match):
        ksparse_nnls(W, X, k, **options)


def test_ksparse_nnls_refuses_mixed_dtypes_and_row_counts():
    with pytest.raises(TypeError, match="W and X must share a dtype, got torch.float32 and torch.float64"):
        ksparse_nnls(W.float(), X, 2)
    with pytest.raises(ValueError, match="must share m"):
        ksparse_nnls(W[:5], X, 2)


@pytest.mark.parametrize("label, value, error, match", [
    (lab, v, e, m) for lab, v, e, m in bad_matrices(X) if lab not in ("None", "a string", "strings", "1-D", "3-D", "empty", "meta")
], ids=lambda v: v if isinstance(v, str) else "")
def test_streaming_fit_checks_every_block(label, value, error, match):
    model = StreamingNMF(3, dtype=F64, seed=0, block_size=4)
    if label == "sparse":
        match = "must be dense"
    with pytest.raises(error, match=match):
        model.fit(value, max_iter=2)
    assert not model.fitted  # nothing half-written


def test_streaming_fit_names_the_bad_block_and_checks_once():
    bad = X.numpy().copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match=r"X\[:, 4:8\] contains NaN"):
        StreamingNMF(3, dtype=F64, seed=0, block_size=4).fit(bad, max_iter=2)
    # a re-iterable source is checked on the first pass only: the later passes read each
    # block once, unchecked (a block whose values change between passes is not re-read)
    reads = []

    def block(start, stop):
        reads.append(start)
        return X[:, start:stop].numpy()

    StreamingNMF(3, dtype=F64, seed=0, block_size=5).fit(block, shape=(12, 10), max_iter=3, tol=0, warn=False)
    assert len(reads) > 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_iter": -1}, ValueError, "max_iter"),
    ({"max_iter": True}, TypeError, "max_iter"),
    ({"checkpoint_every": 0}, ValueError, "option 'checkpoint_every' must be an integer >= 1, got 0"),
    ({"checkpoint_every": 1.5}, TypeError, "checkpoint_every"),
    ({"resume": "yes"}, TypeError, "option 'resume'"),
    ({"shape": (5, 5)}, ValueError, r"shape=\(5, 5\) does not match X's shape \(12, 10\)"),
    ({"shape": "x"}, ValueError, "shape must be a pair of positive integers"),
])
def test_streaming_fit_refuses_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        StreamingNMF(3, seed=0).fit(X, **kwargs)


def test_streaming_fit_max_iter_none_is_the_default():
    result = StreamingNMF(3, seed=0, dtype=F64).fit(X, max_iter=None, warn=False)
    assert result.n_iter >= 1


@pytest.mark.parametrize("solver", ["mu", "pg"])
@pytest.mark.parametrize("label, value, match", [
    ("NaN", _with(torch.rand(5, 12, dtype=F64), math.nan), "x contains NaN or infinite"),
    ("inf", _with(torch.rand(5, 12, dtype=F64), math.inf), "x contains NaN or infinite"),
    ("sparse", torch.rand(5, 12, dtype=F64).to_sparse(), "x must be a dense tensor"),
])
def test_nnls_layer_refuses_non_finite_and_sparse_input(solver, label, value, match):
    layer = NNLSLayer(12, 3, solver=solver, dtype=F64)
    with pytest.raises((ValueError, TypeError), match=match):
        layer(value)


def test_nnls_layer_negative_input_names_the_solver():
    with pytest.raises(ValueError, match="x has negative entries.*solver 'mu' with loss 'frobenius' needs nonnegative"):
        NNLSLayer(12, 3, solver="mu", dtype=F64)(_with(torch.rand(5, 12, dtype=F64), -1.0))


def test_nnls_layer_takes_an_empty_batch():
    assert NNLSLayer(12, 3, solver="mu", dtype=F64)(torch.rand(0, 12, dtype=F64)).shape == (0, 3)


@pytest.fixture
def one_process_group():
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(29600 + os.getpid() % 300)
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("which", ["X", "W", "H"])
@pytest.mark.parametrize("label, value, error, match", [
    row for row in bad_matrices(torch.ones(2, 2)) if row[0] not in ("None", "a string", "strings")
], ids=lambda v: v if isinstance(v, str) else "")
def test_distributed_solver_refuses_bad_matrices(one_process_group, which, label, value, error, match):
    from torchnmf_l1.distributed import DistributedNMFSolver

    base = {"X": X, "W": W, "H": H}[which]
    value = {"1-D": base[0], "3-D": base[None], "empty": base[:0], "NaN": _with(base, math.nan),
             "inf": _with(base, math.inf), "negative": _with(base, -1.0), "complex": base.to(torch.complex128),
             "bool": base > 0.5, "sparse": base.to_sparse(), "meta": base.to("meta")}[label]
    if which == "X" and label == "sparse":
        pytest.skip("a sparse X is supported")
    if which != "X" and label in ("complex", "bool", "sparse"):
        error, match = TypeError, "dense floating-point torch tensor"
    if which == "X" and label in ("1-D", "3-D"):
        match = "must be 2-D"
    if which == "X" and label == "sparse":
        match = "dense"
    args = {"X": X, "W": W.clone(), "H": H.clone(), which: value}
    if which == "X" and label == "NaN":  # NaN entries of X are missing (tests/test_missing.py), not an error
        solver = DistributedNMFSolver(args["X"], args["W"], args["H"])
        assert solver.problem.weights is not None and float(solver.problem.weights.X.min()) == 0.0
        return
    with pytest.raises(error, match=match):
        DistributedNMFSolver(args["X"], args["W"], args["H"])
