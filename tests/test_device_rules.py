"""Device rules: every model fits CPU inputs while the default device is "meta".

Any tensor allocated without taking its device from the input would land on the meta
device (no data) and fail; so these fits pass only if every allocation of every family,
dense and sparse, follows the input.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import torchnmf_l1 as T
from torchnmf_l1.parametrize import train_autograd

F64 = torch.float64
g = torch.Generator().manual_seed(0)
X = torch.rand(30, 4, generator=g, dtype=F64) @ torch.rand(4, 25, generator=g, dtype=F64)
XS = sp.random(30, 25, density=0.3, random_state=0, format="csr")
D = torch.rand(30, 12, generator=g, dtype=F64)
TENSOR = torch.rand(6, 7, 8, generator=g, dtype=F64)
D6 = torch.rand(6, 10, generator=g, dtype=F64)


def _transform():
    model = T.NMF(3, seed=0, device="cpu")
    model.fit(X, max_iter=3)
    return model.transform(X)


def _sklearn():
    from torchnmf_l1.sklearn import TorchNMF

    return TorchNMF(3, random_state=0, max_iter=3).fit_transform(XS.toarray())


FITS = {
    "nmf hals dense": lambda: T.NMF(3, seed=0, device="cpu").fit(X, max_iter=3),
    "nmf hals sparse": lambda: T.NMF(3, seed=0, device="cpu").fit(XS, max_iter=3),
    "nmf hals numpy": lambda: T.NMF(3, seed=0, device="cpu").fit(X.numpy(), max_iter=3),
    "nmf mu kl sparse": lambda: T.NMF(3, loss="kl", seed=0, device="cpu").fit(XS, max_iter=3),
    "nmf mu beta sparse": lambda: T.NMF(3, loss="beta", beta=1.5, seed=0, device="cpu").fit(XS, max_iter=3),
    "nmf scd sparse": lambda: T.NMF(3, loss="l1", seed=0, device="cpu").fit(XS, max_iter=3),
    "nmf scd dense": lambda: T.NMF(3, loss="wl1", zero_weight=0.3, seed=0, device="cpu").fit(X, max_iter=3),
    "nmf cd-l1": lambda: T.NMF(3, loss="l1", solver="cd-l1", seed=0, device="cpu").fit(X, max_iter=3),
    "nmf batch": lambda: T.NMF(3, seed=0, device="cpu").fit(torch.stack([X, X]), max_iter=3),
    "nmf batch sparse": lambda: T.NMF(3, loss="kl", seed=0, device="cpu").fit([XS, XS], max_iter=3),
    "nmf transform": _transform,
    "sklearn estimator": _sklearn,
    "train_autograd": lambda: train_autograd(T.NMF(3, shape=X.shape, seed=0, device="cpu", dtype=F64), X, steps=3),
    "separable spa": lambda: T.SeparableNMF(3, "spa", device="cpu").fit(X),
    "separable snpa": lambda: T.SeparableNMF(3, "snpa", device="cpu").fit(X),
    "separable xray": lambda: T.SeparableNMF(3, "xray", device="cpu").fit(X),
    "separable vca": lambda: T.SeparableNMF(3, "vca", seed=0, device="cpu").fit(X),
    "separable h2nmf": lambda: T.SeparableNMF(3, "h2nmf", device="cpu").fit(X),
    "separable fgnsr": lambda: T.SeparableNMF(3, "fgnsr", seed=0, device="cpu").fit(X, max_iter=5),
    "separable spa-10": lambda: T.SeparableNMF(3, "spa", subsample=10, device="cpu").fit(X),
    "dictionary d-spa": lambda: T.DictionaryNMF(3, dictionary=D, init="spa", device="cpu").fit(X, max_iter=5),
    "dictionary random": lambda: T.DictionaryNMF(3, dictionary=D, init="random", seed=0, device="cpu").fit(X, max_iter=5),
    "dictionary several": lambda: T.DictionaryNMF(3, dictionary=[D[:, :6], D[:, 6:]], counts=[1, 2], device="cpu").fit(X, max_iter=5),
    "cp random": lambda: T.NonnegativeCP(3, seed=0, device="cpu").fit(TENSOR, max_iter=5),
    "cp svd": lambda: T.NonnegativeCP(3, init="svd", seed=0, device="cpu").fit(TENSOR, max_iter=5),
    "cp mask": lambda: T.NonnegativeCP(3, seed=0, device="cpu").fit(TENSOR, mask=TENSOR > 0.2, max_iter=5),
    "cp batch": lambda: T.NonnegativeCP(3, seed=0, device="cpu").fit(torch.stack([TENSOR, TENSOR]), batch=True, max_iter=5),
    "dictionary cp": lambda: T.DictionaryCP(3, dictionary=D6, seed=0, device="cpu").fit(TENSOR, max_iter=25),
    "dictionary cp subspace flexible": lambda: T.DictionaryCP(
        3, dictionary=D6, atoms_init="subspace", snap="flexible", seed=0, device="cpu").fit(TENSOR, max_iter=25),
    "streaming hals": lambda: T.StreamingNMF(3, block_size=10, seed=0, dtype=F64, device="cpu").fit(X.numpy(), max_iter=3),
    "streaming online": lambda: T.StreamingNMF(3, solver="online", block_size=10, seed=0, dtype=F64, device="cpu").fit(X.numpy(), max_iter=3),
    "nnls layer pg": lambda: T.NNLSLayer(30, 4, seed=0, dtype=F64, device="cpu")(X.T),
    "nnls layer mu kl": lambda: T.NNLSLayer(30, 4, solver="mu", loss="kl", seed=0, dtype=F64, device="cpu")(X.T),
    "ksparse exact": lambda: T.ksparse_nnls(D[:, :5], X, 2),
    "ksparse greedy": lambda: T.ksparse_nnls(D[:, :5], X, 2, method="greedy"),
    "h2nmf clustering": lambda: T.h2nmf_clustering(X, 5),
    "lrsca exact": lambda: T.LRSCA(3, 2, n_init=2, seed=0, device="cpu").fit(X, max_iter=5),
    "lrsca greedy sign-free": lambda: T.LRSCA(3, 2, nonnegative=False, coding="greedy", n_init=2, seed=0,
                                              device="cpu").fit(X, max_iter=5),
}


@pytest.mark.parametrize("name", sorted(FITS))
def test_fits_allocate_from_their_inputs(name):
    torch.set_default_device("meta")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = FITS[name]()
    finally:
        torch.set_default_device(None)
    tensors = [out] if isinstance(out, torch.Tensor) else [v for v in getattr(out, "__dict__", {}).values() if isinstance(v, torch.Tensor)]
    for t in tensors:
        assert t.device.type == "cpu", f"{name}: a result on {t.device}"
    if isinstance(out, np.ndarray):
        assert np.isfinite(out).all()
