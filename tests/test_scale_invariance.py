"""fit(c X) reaches the relative error of fit(X) for c = 10^k, k = -30 .. 20 (float64).

No floor of the package is absolute: epsilons scale with the data (``eps * max``), NNDSVD
thresholds and fills with the singular values and the mean, tensorly's SVD start sees
T / max(T). Float32 is checked over the range whose c^2 sums neither overflow nor
underflow (k = -12 .. 12, and 2^-40, 2^40).
"""

import pytest
import torch

pytest.importorskip("tensorly")

from torchnmf_l1 import NMF, DictionaryCP, DictionaryNMF, NonnegativeCP, SeparableNMF, StreamingNMF  # noqa: E402

F64 = torch.float64
SCALES_64 = [10.0**k for k in (-30, -20, -10, -5, 5, 10, 20)]
SCALES_32 = [10.0**k for k in (-12, -6, 6, 12)] + [2.0**-40, 2.0**40]


def _data():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(30, 4, generator=g, dtype=F64) @ torch.rand(4, 25, generator=g, dtype=F64) + 0.01
    X_sparse = torch.where(torch.rand(30, 25, generator=g, dtype=F64) < 0.6, X, 0.0)
    T = torch.einsum("ir,jr,kr->ijk", *(torch.rand(s, 3, generator=g, dtype=F64) for s in (6, 7, 8)))
    return X, X_sparse, T


X, X_SPARSE, T = _data()


def _relative(X, R):
    X = X.to_dense() if X.layout != torch.strided else X
    return float(torch.linalg.norm(X - R) / torch.linalg.norm(X))


def _nmf(X, dtype=F64, **options):
    model = NMF(4, seed=0, **options)
    model.fit(X.to(dtype), max_iter=40, tol=0, warn=False)
    return _relative(X.to(dtype), model.reconstruct())


def _nmf_sparse(X, **options):
    model = NMF(4, seed=0, **options)
    model.fit(X.to_sparse_csr(), max_iter=40, tol=0, warn=False)
    return _relative(X, model.reconstruct())


def _batch(X, **options):
    model = NMF(4, seed=0, **options)
    model.fit(torch.stack([X, 3 * X]), max_iter=30, tol=0, warn=False)
    return _relative(X, model.reconstruct()[0])


def _transform(X, **options):
    model = NMF(4, seed=0, **options)
    model.fit(X, max_iter=30, tol=0, warn=False)
    return _relative(X[:, :10], model.W.detach() @ model.transform(X[:, :10]))


def _streaming(X, solver):
    model = StreamingNMF(4, seed=0, dtype=F64, solver=solver, block_size=10)
    result = model.fit(X.numpy(), max_iter=10, tol=0, warn=False)
    return float(result.objective[-1]) / float(X.square().sum())


def _cp(T, dtype=F64, **options):
    return NonnegativeCP(3, seed=0, **options).fit(T.to(dtype), max_iter=40, tol=0, warn=False).extra["relative_error"]


def _dictionary_cp(T):
    D = torch.rand(6, 10, generator=torch.Generator().manual_seed(1), dtype=F64)
    return DictionaryCP(3, dictionary=D, seed=0).fit(T, max_iter=20, tol=0, warn=False).extra["relative_error"]


def _separable(X, solver):
    return SeparableNMF(4, solver, seed=0).fit(X, max_iter=30, warn=False).extra["relative_error"]


CASES = {
    "hals nndsvda": lambda c: _nmf(c * X),
    "hals nndsvd": lambda c: _nmf(c * X, init="nndsvd"),
    "hals nndsvdar": lambda c: _nmf(c * X, init="nndsvdar"),
    "hals random": lambda c: _nmf(c * X, init="random"),
    "mu frobenius": lambda c: _nmf(c * X, solver="mu"),
    "mu kl": lambda c: _nmf(c * X, loss="kl"),
    "mu is": lambda c: _nmf(c * X, loss="is"),
    "mu beta 1.5": lambda c: _nmf(c * X, loss="beta", beta=1.5),
    "mu beta 0.5": lambda c: _nmf(c * X, loss="beta", beta=0.5),
    "mu kl sparse": lambda c: _nmf_sparse(c * X_SPARSE, loss="kl"),
    "mu beta sparse": lambda c: _nmf_sparse(c * X_SPARSE, loss="beta", beta=1.5),
    "hals sparse": lambda c: _nmf_sparse(c * X_SPARSE),
    "l1 scd": lambda c: _nmf(c * X_SPARSE, loss="l1"),
    "wl1 scd": lambda c: _nmf(c * X_SPARSE, loss="wl1", zero_weight=0.3),
    "l1 cd": lambda c: _nmf(c * X_SPARSE, loss="l1", solver="cd-l1"),
    "l1 ns": lambda c: _nmf(c * X, loss="l1", solver="ns"),
    "l1 sub": lambda c: _nmf(c * X, loss="l1", solver="sub"),
    "l21 mu": lambda c: _nmf(c * X, loss="l21"),
    "hals batch": lambda c: _batch(c * X),
    "kl batch": lambda c: _batch(c * X, loss="kl"),
    "transform": lambda c: _transform(c * X),
    "transform kl": lambda c: _transform(c * X, loss="kl"),
    "streaming hals": lambda c: _streaming(c * X, "hals"),
    "streaming online": lambda c: _streaming(c * X, "online"),
    "separable spa": lambda c: _separable(c * X, "spa"),
    "separable snpa": lambda c: _separable(c * X, "snpa"),
    "separable xray": lambda c: _separable(c * X, "xray"),
    "separable vca": lambda c: _separable(c * X, "vca"),
    "separable h2nmf": lambda c: _separable(c * X, "h2nmf"),
    "separable fgnsr": lambda c: _separable(c * X, "fgnsr"),
    "dictionary": lambda c: DictionaryNMF(4, dictionary=c * X, init="spa").fit(c * X, max_iter=20, warn=False).extra["relative_error"],
    "cp random": lambda c: _cp(c * T),
    "cp svd": lambda c: _cp(c * T, init="svd"),
    "dictionary cp": lambda c: _dictionary_cp(c * T),
}

CASES_32 = {
    "hals": lambda c: _nmf(c * X, torch.float32),
    "mu frobenius": lambda c: _nmf(c * X, torch.float32, solver="mu"),
    "mu kl": lambda c: _nmf(c * X, torch.float32, loss="kl"),
    "cp random": lambda c: _cp(c * T, torch.float32),
}


@pytest.mark.parametrize("name", list(CASES))
def test_relative_error_does_not_depend_on_the_scale_float64(name):
    fit = CASES[name]
    reference = fit(1.0)
    assert 0 <= reference < 1
    for c in SCALES_64:
        assert fit(c) == pytest.approx(reference, rel=1e-6, abs=1e-12), f"c = {c:g}"


@pytest.mark.parametrize("name", list(CASES_32))
def test_relative_error_does_not_depend_on_the_scale_float32(name):
    fit = CASES_32[name]
    reference = fit(1.0)
    for c in SCALES_32:
        assert fit(c) == pytest.approx(reference, rel=1e-3), f"c = {c:g}"
