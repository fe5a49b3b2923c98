"""The solver contract, tested for every registered solver of every family the moment it registers.

For each family a case builder makes a small problem and a starting state; every solver
of :func:`available_solvers(family)` is then checked for: nonnegative factors of the
problem's dtype and device, a monotone objective where the class declares it
(``monotone``), float32 agreeing with float64, a batch equal to its problems fitted one
by one (``batched``), no host synchronisation inside ``step()``, and no allocation on the
default device (``torch.set_default_device("meta")`` while it runs on CPU inputs).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.distributed as dist

from torchnmf_l1 import run_fit
from torchnmf_l1.blocks import BlockSource
from torchnmf_l1.data import prepare_data
from torchnmf_l1.diagnostics import count_syncs
from torchnmf_l1.problem import (
    CPProblem,
    CPState,
    DictionaryProblem,
    DistributedProblem,
    FactorState,
    NMFProblem,
    NNLSProblem,
    Penalties,
    SeparableProblem,
    SparseProblem,
    StreamingProblem,
    resolve_loss,
)
from torchnmf_l1.registry import FAMILIES, available_solvers, get_solver

F64 = torch.float64


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _low_rank(m, n, r, seed, dtype=F64, density=1.0):
    g = _generator(seed)
    X = torch.rand(m, r, generator=g, dtype=F64) @ torch.rand(r, n, generator=g, dtype=F64)
    X = X + 0.05 * torch.rand(m, n, generator=g, dtype=F64)
    if density < 1:
        X = torch.where(torch.rand(m, n, generator=g, dtype=F64) < density, X, 0.0)
    return X.to(dtype)


def _loss_for(solver_cls):
    """One problem per loss the solver handles (beta 1.5 and 0.5 for the general beta)."""
    out = []
    for name in sorted(solver_cls.losses):
        if name == "beta":
            out += [resolve_loss("beta", beta=1.5), resolve_loss("beta", beta=0.5)]
        elif name == "wl1":
            out.append(resolve_loss("wl1", zero_weight=0.3))
        else:
            out.append(resolve_loss(name))
    return out


# ----------------------------------------------------------------------------- cases per family
# Each builder: (solver class, dtype, seed, device) -> list of (label, problem, state).
def nmf_cases(cls, dtype, seed=0, device="cpu", batch=None):
    cases = []
    m, n, r = 14, 11, 3
    for loss in _loss_for(cls):
        positive = loss.needs_positive_data
        sparse_inputs = [False] + ([True] if cls.supports_sparse and not positive else [])
        for sparse in sparse_inputs:
            density = 1.0 if positive else 0.6
            mats = [_low_rank(m, n, r, seed + b, dtype, density) for b in range(batch or 1)]
            inputs = [sp.csr_matrix(x.numpy()) if sparse else x for x in mats]
            X = inputs[0] if batch is None else (inputs if sparse else torch.stack(mats))
            data = prepare_data(X, device=device, dtype=dtype, allow_batch=batch is not None)
            penalties = Penalties(l1_W=0.01, l1_H=0.02) if loss.name in ("l1", "wl1") else Penalties(0.01, 0.01, 0.02, 0.0)
            g = _generator(seed + 100)
            lead = () if batch is None else (batch,)
            W = torch.rand(lead + (m, r), generator=g, dtype=F64).add_(0.1).to(device=device, dtype=dtype)
            H = torch.rand(lead + (r, n), generator=g, dtype=F64).add_(0.1).to(device=device, dtype=dtype)
            label = f"{loss.name}{loss.beta if loss.name == 'beta' else ''}-{'sparse' if sparse else 'dense'}"
            cases.append((label, NMFProblem(data, loss, penalties), FactorState(W, H)))
    return cases


def separable_cases(cls, dtype, seed=0, device="cpu", batch=None):
    g = _generator(seed)
    W = torch.rand(20, 4, generator=g, dtype=F64)
    H = torch.cat([torch.eye(4, dtype=F64), torch.rand(4, 30, generator=g, dtype=F64).softmax(0)], dim=1)
    X = (W @ H + 1e-3 * torch.rand(20, 34, generator=g, dtype=F64)).to(device=device, dtype=dtype)
    return [("near-separable", SeparableProblem(X, 4, torch.Generator(device=device).manual_seed(seed)), None),
            ("subsampled", SeparableProblem(X, 4, torch.Generator(device=device).manual_seed(seed), subsample=12), None)]


def dictionary_cases(cls, dtype, seed=0, device="cpu", batch=None):
    g = _generator(seed)
    D = torch.rand(25, 15, generator=g, dtype=F64)
    X = D[:, [1, 4, 9]] @ torch.rand(3, 30, generator=g, dtype=F64) + 1e-3 * torch.rand(25, 30, generator=g, dtype=F64)
    X, D = X.to(device=device, dtype=dtype), D.to(device=device, dtype=dtype)
    gen = torch.Generator(device=device).manual_seed(seed)
    init_problem = SeparableProblem(X, 3, torch.Generator(device=device).manual_seed(seed))
    return [("random", DictionaryProblem(X, D, 3, generator=gen), None),
            ("d-spa", DictionaryProblem(X, D, 3, init="spa", init_problem=init_problem, init_options={}, generator=gen), None)]


def cp_cases(cls, dtype, seed=0, device="cpu", batch=None):
    out = []
    shape, r = (6, 7, 5), 3
    lead = () if batch is None else (batch,)
    g = _generator(seed)
    tensors = []
    for b in range(batch or 1):
        A, B, C = (torch.rand(s, r, generator=g, dtype=F64) for s in shape)
        tensors.append(torch.einsum("ir,jr,kr->ijk", A, B, C) + 0.01 * torch.rand(shape, generator=g, dtype=F64))
    T = (tensors[0] if batch is None else torch.stack(tensors)).to(device=device, dtype=dtype)
    mask = torch.rand(T.shape, generator=g) > 0.2
    for label, m in (("full", None), ("masked", mask.to(device))):
        factors = [torch.rand(lead + (s, r), generator=_generator(seed + 7), dtype=F64).to(device=device, dtype=dtype)
                   for s in shape]
        Tm = T if m is None else torch.where(m, T, 0.0)
        out.append((label, CPProblem(Tm, m, batch), CPState(factors)))
    return out


def streaming_cases(cls, dtype, seed=0, device="cpu", batch=None):
    X = _low_rank(16, 40, 3, seed, F64)
    g = _generator(seed + 1)
    W = torch.rand(16, 3, generator=g, dtype=F64).to(device=device, dtype=dtype)
    H = torch.rand(3, 40, generator=g, dtype=F64).to(device=device, dtype=dtype) if cls.keeps_H else None
    problem = StreamingProblem(BlockSource(X.numpy()), 15, torch.device(device), dtype, Penalties(0.01, 0.0, 0.01, 0.0))
    return [("blocks", problem, FactorState(W, H))]


def distributed_cases(cls, dtype, seed=0, device="cpu", batch=None):
    cases = []
    for label, problem, state in nmf_cases(cls, dtype, seed, device):
        d = problem.data
        cases.append((label, DistributedProblem(d, problem.loss, problem.penalties), state))
    return cases


def nnls_cases(cls, dtype, seed=0, device="cpu", batch=None):
    g = _generator(seed)
    W = torch.rand(12, 4, generator=g, dtype=F64)
    x = torch.rand(9, 4, generator=g, dtype=F64) @ W.T + 0.01
    return [(loss, NNLSProblem(x.to(device=device, dtype=dtype), W.to(device=device, dtype=dtype), loss, 0.01), None)
            for loss in cls.losses]


def sparse_cases(cls, dtype, seed=0, device="cpu", batch=None):
    # one planted X with 2-sparse codes (seed 0), starts drawn from each seed: a batch is B starts on it
    g = _generator(0)
    W = torch.rand(15, 4, generator=g, dtype=F64)
    H = torch.zeros(4, 24, dtype=F64)
    for j in range(24):
        H[torch.randperm(4, generator=g)[:2], j] = 0.5 + torch.rand(2, generator=g, dtype=F64)
    X = (W @ H + 1e-3 * torch.rand(15, 24, generator=g, dtype=F64)).to(device=device, dtype=dtype)
    # starts near the planted W: a random start can meet near-ties of supports, where float32 and float64 part ways
    starts = torch.stack([W + 0.3 * torch.rand(15, 4, generator=_generator(seed + b + 50), dtype=F64) for b in range(batch or 1)])
    W0 = (starts[0] if batch is None else starts).to(device=device, dtype=dtype)
    return [(coding, SparseProblem(X, 2, True, coding, batch), FactorState(W0, None)) for coding in ("exact", "greedy")]


CASES = {
    "nmf": nmf_cases,
    "separable": separable_cases,
    "dictionary": dictionary_cases,
    "cp": cp_cases,
    "streaming": streaming_cases,
    "distributed": distributed_cases,
    "nnls": nnls_cases,
    "sparse": sparse_cases,
}


@pytest.fixture(scope="module", autouse=True)
def one_process_group(tmp_path_factory):
    """A world of one gloo process, so that the distributed solvers run in this process."""
    if dist.is_initialized():
        yield
        return
    store = tmp_path_factory.mktemp("dist") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _all_solvers():
    return [pytest.param(family, name, id=f"{family}-{name}") for family in FAMILIES for name in available_solvers(family)]


def _copy_state(state):
    if state is None:
        return None
    if isinstance(state, CPState):
        return CPState([F.clone() for F in state.factors])
    return FactorState(state.W.clone(), None if state.H is None else state.H.clone())


def _solver(family, name, problem, state):
    cls = get_solver(name, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls.create(problem, _copy_state(state))


def _steps(solver, k):
    values = [float(solver.objective().sum())]
    with torch.no_grad():
        for _ in range(k):
            solver.step()
            if hasattr(solver, "at_check"):
                solver.at_check(0.0)
            values.append(float(solver.objective().sum()))
    return values


def _tensors(output):
    out = []
    for value in output.factors.values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                out.append(v)
    return out


def test_every_family_has_a_case_builder():
    assert set(CASES) == set(FAMILIES), "a new family needs a case builder in tests/test_contract.py"
    for family in FAMILIES:
        assert available_solvers(family), f"family {family!r} has no registered solver"


@pytest.mark.parametrize("family,name", _all_solvers())
def test_contract(family, name, dtype):
    cls = get_solver(name, family=family)
    assert cls.name == name and cls.family == family
    assert isinstance(cls.options, dict)
    for label, problem, state in CASES[family](cls, dtype):
        solver = _solver(family, name, problem, state)
        values = _steps(solver, 8)
        assert all(np.isfinite(values[1:])), (label, values)  # (an online surrogate starts at inf)
        if cls.monotone:
            increases = np.diff(values)
            assert np.all(increases <= 1e-9 * np.abs(values[:-1]) + 1e-12), f"{label}: objective increased {values}"
        output = solver.finish()
        for F in _tensors(output):
            assert F.dtype == dtype, (label, F.dtype)
            assert bool((F >= 0).all()) and bool(torch.isfinite(F).all()), label
        assert isinstance(output.extra, dict)
        if "relative_error" in output.extra:
            err = np.asarray(output.extra["relative_error"], dtype=float)
            if family == "nmf":  # exactly ||X - WH||_F / ||X||_F of the factors returned (a fraction, not a percentage)
                X = problem.data.X.to_dense().double() if problem.data.sparse else problem.data.X.double()
                W, H = output.factors["W"].double(), output.factors["H"].double()
                if problem.batch is None:
                    expected = float(torch.linalg.norm(X - W @ H) / torch.linalg.norm(X))
                else:
                    expected = (torch.linalg.vector_norm(X - W @ H, dim=(-2, -1)) / torch.linalg.vector_norm(X, dim=(-2, -1))).numpy()
                np.testing.assert_allclose(err, expected, rtol=1e-3 if dtype == torch.float32 else 1e-8, err_msg=label)
            else:
                assert np.all((err >= 0) & (err < 1)), f"{label}: relative_error must be a fraction, got {err}"


@pytest.mark.parametrize("family,name", _all_solvers())
def test_float32_agrees_with_float64(family, name):
    cls = get_solver(name, family=family)
    runs = {}
    for dtype in (torch.float32, torch.float64):
        runs[dtype] = [_steps(_solver(family, name, p, s), 5) for _, p, s in CASES[family](cls, dtype)]
    for f32, f64 in zip(runs[torch.float32], runs[torch.float64]):
        scale = max(abs(v) for v in f64 if np.isfinite(v))  # float32 round-off is relative to the data's scale
        np.testing.assert_allclose(f32[-1], f64[-1], rtol=5e-3, atol=1e-5 * scale)


@pytest.mark.parametrize("family,name", _all_solvers())
def test_step_never_reads_the_device(family, name):
    cls = get_solver(name, family=family)
    for label, problem, state in CASES[family](cls, F64):
        solver = _solver(family, name, problem, state)
        with torch.no_grad():
            solver.step()  # the first step may build caches
            with count_syncs() as syncs:
                solver.step()
                solver.step()
        assert syncs.count == 0, f"{family}/{name} ({label}): step() read the device: {syncs.events}"


@pytest.mark.parametrize("family,name", _all_solvers())
def test_no_allocation_on_the_default_device(family, name):
    cls = get_solver(name, family=family)
    for label, problem, state in CASES[family](cls, F64):
        torch.set_default_device("meta")
        try:
            solver = _solver(family, name, problem, state)
            _steps(solver, 3)
            output = solver.finish()
        finally:
            torch.set_default_device(None)
        for F in _tensors(output):
            assert F.device.type == "cpu", f"{label}: a result on {F.device}"


BATCHED = [pytest.param(f, n, id=f"{f}-{n}") for f in FAMILIES for n in available_solvers(f) if get_solver(n, family=f).batched]


@pytest.mark.parametrize("family,name", BATCHED)
def test_batch_equals_its_problems_one_by_one(family, name):
    """Each problem of a batch ends equal to its own fit from the same start, stopping on its own."""
    cls = get_solver(name, family=family)
    batch = 3
    batched_cases = CASES[family](cls, F64, seed=0, batch=batch)
    for index, (label, problem, state) in enumerate(batched_cases):
        solver = _solver(family, name, problem, state)
        tol = 1e-3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = run_fit(solver, max_iter=60, tol=tol, check_every=2)
        out = solver.finish()
        stops = result.n_iter_per_problem
        for b in range(batch):
            single_label, single_problem, single_state = CASES[family](cls, F64, seed=b)[index] if family != "cp" else \
                _cp_single(problem, state, b)
            single = _solver(family, name, single_problem, _slice_state(state, b) if family != "cp" else single_state)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                single_result = run_fit(single, max_iter=60, tol=tol, check_every=2)
            assert single_result.n_iter == stops[b], f"{label} problem {b}: stopped at {stops[b]}, alone at {single_result.n_iter}"
            reference = single.finish()
            for got, want in zip(_tensors(out), _tensors(reference)):
                torch.testing.assert_close(got[b], want, rtol=1e-6, atol=1e-10, msg=f"{label}: problem {b} differs")


def _slice_state(state, b):
    return FactorState(state.W[b].clone(), None if state.H is None else state.H[b].clone())


def _cp_single(problem, state, b):
    mask = None if problem.mask is None else problem.mask[b]
    return "single", CPProblem(problem.T[b], mask), CPState([F[b].clone() for F in state.factors])


@pytest.mark.parametrize("name,options", [("hals", {}), ("mu", {}), ("hals", {"beta0": 0.5})],
                         ids=["hals", "mu", "hals-extrapolated"])
def test_nmf_step_compiles_to_one_graph(name, options):
    """torch.compile(step, fullgraph=True): no graph break, the condition for CUDA-graph capture."""
    cls = get_solver(name)
    _, problem, state = nmf_cases(cls, F64)[0]
    eager, compiled = (cls.create(problem, _copy_state(state), **options) for _ in range(2))
    step = torch.compile(compiled.step, fullgraph=True, backend=os.environ.get("TORCHNMF_COMPILE_BACKEND", "inductor"))
    with torch.no_grad():
        for _ in range(3):
            eager.step()
            step()
    torch.testing.assert_close(compiled.W, eager.W, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(compiled.H, eager.H, rtol=1e-9, atol=1e-12)


def test_readme_example_solver_meets_the_contract():
    """The "Adding a solver" example of the README passes every check of this file."""
    from pathlib import Path

    from torchnmf_l1 import registry

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("## Adding a solver", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    registry._SOLVERS["nmf"].pop("pg-example", None)
    try:
        exec(compile(block, "README.md (Adding a solver)", "exec"), {})
        for dtype in (torch.float32, torch.float64):
            test_contract("nmf", "pg-example", dtype)
        test_float32_agrees_with_float64("nmf", "pg-example")
        test_step_never_reads_the_device("nmf", "pg-example")
        test_no_allocation_on_the_default_device("nmf", "pg-example")
        test_batch_equals_its_problems_one_by_one("nmf", "pg-example")
    finally:
        registry._SOLVERS["nmf"].pop("pg-example", None)
