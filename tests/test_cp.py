"""Nonnegative CPD and dictionary-constrained CPD: tensorly as the peer, planted tensors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from torchnmf_l1 import DictionaryCP, NonnegativeCP


def _factors(shape, rank, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(s, rank, generator=g, dtype=dtype) + 0.05 for s in shape]


def _full(factors):
    letters = "abcdefgh"[: len(factors)]
    return torch.einsum(",".join(f"{c}r" for c in letters) + "->" + letters, *factors)


def _congruence(true, found):
    """Best mean over permutations of the product over modes of the column cosines."""
    r = true[0].shape[1]
    C = torch.ones(r, r, dtype=torch.float64)
    for A, B in zip(true, found):
        A = A.double() / A.double().norm(dim=0)
        B = B.detach().double().cpu() / B.detach().double().cpu().norm(dim=0).clamp_min(1e-300)
        C = C * (A.T @ B)
    return max(float(np.mean([C[i, p[i]] for i in range(r)])) for p in itertools.permutations(range(r)))


def test_cp_matches_tensorly_from_same_start():
    import tensorly as tl
    from tensorly.cp_tensor import CPTensor
    from tensorly.decomposition import non_negative_parafac_hals

    T = _full(_factors((8, 9, 10), 3, 0))
    T = T + 0.05 * torch.rand(T.shape, generator=torch.Generator().manual_seed(1), dtype=T.dtype)
    start = _factors(T.shape, 3, 2)
    model = NonnegativeCP(3)
    result = model.fit(T, factors=start, max_iter=40, tol=0)
    with tl.backend_context("pytorch"):
        peer = non_negative_parafac_hals(T, 3, n_iter_max=40, init=CPTensor((torch.ones(3, dtype=T.dtype), [F.clone() for F in start])), tol=0)
        peer_error = float(tl.norm(T - tl.cp_to_tensor(peer)) / tl.norm(T))
    ours = result.extra["relative_error"]
    assert abs(ours - peer_error) <= 0.01 * peer_error, (ours, peer_error)
    assert all((F >= 0).all() for F in model.factors)
    assert all(b <= a + 1e-9 for a, b in zip(result.objective, result.objective[1:]))  # monotone


@pytest.mark.parametrize("shape", [(6, 7, 8), (5, 4, 6, 3)])
def test_cp_recovers_planted_exact(device, shape):
    true = _factors(shape, 3, 3)
    T = _full(true).to(device)
    model = NonnegativeCP(3, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(T, max_iter=300, tol=1e-10, check_every=25)
    assert model.factors[0].device.type == device.type
    assert result.extra["relative_error"] < 1e-2
    assert _congruence(true, list(model.factors)) > 0.99


def test_cp_mask_ignores_missing_entries():
    true = _factors((7, 8, 9), 2, 4)
    T = _full(true)
    mask = torch.rand(T.shape, generator=torch.Generator().manual_seed(5)) > 0.3
    corrupted = torch.where(mask, T, torch.full_like(T, 1e3))
    kwargs = dict(max_iter=250, tol=1e-12, check_every=25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        masked = NonnegativeCP(2, seed=0)
        masked.fit(corrupted, mask=mask, **kwargs)
        nan_marked = NonnegativeCP(2, seed=0)
        nan_marked.fit(torch.where(mask, T, torch.full_like(T, float("nan"))), **kwargs)
        unmasked = NonnegativeCP(2, seed=0)
        unmasked.fit(corrupted, **kwargs)
    full_error = lambda m: float(torch.linalg.norm(m().detach() - T) / torch.linalg.norm(T))  # noqa: E731
    assert full_error(masked) < 1e-2  # the missing entries are predicted as well
    torch.testing.assert_close(masked().detach(), nan_marked().detach(), msg="NaN entries = masked entries")
    assert full_error(unmasked) > 0.5  # without the mask the outliers ruin the fit


def test_cptensor_round_trip():
    import tensorly as tl
    from tensorly.cp_tensor import CPTensor

    T = _full(_factors((5, 6, 7), 2, 6))
    model = NonnegativeCP(2, seed=0)
    model.fit(T, max_iter=20, tol=0)
    cp = model.to_cptensor()
    assert isinstance(cp, CPTensor)
    with tl.backend_context("pytorch"):
        torch.testing.assert_close(tl.cp_to_tensor(cp), model().detach())
    again = NonnegativeCP.from_cptensor(cp)
    torch.testing.assert_close(again().detach(), model().detach())
    weights = np.array([2.0, 3.0])
    numpy_cp = CPTensor((weights, [F.numpy() for F in cp.factors]))
    scaled = NonnegativeCP.from_cptensor(numpy_cp)
    expected = _full([cp.factors[0] * torch.as_tensor(weights), *cp.factors[1:]])
    torch.testing.assert_close(scaled().detach(), expected)


def _dictionary_problem(seed, shape=(15, 8, 9), d=25, true=(3, 8, 15)):
    g = torch.Generator().manual_seed(seed)
    D = torch.rand(shape[0], d, generator=g, dtype=torch.float64)
    factors = _factors(shape, len(true), seed + 100)
    factors[0] = D[:, list(true)]
    return D, factors, _full(factors), sorted(true)


@pytest.mark.parametrize("mode", [0, 1])
def test_dictionary_cp_recovers_planted_atoms(mode):
    D, factors, T, true = _dictionary_problem(0)
    T = T.permute(1, 0, 2) if mode == 1 else T
    model = DictionaryCP(3, dictionary=D, mode=mode, seed=0)
    result = model.fit(T, max_iter=200)
    assert sorted(model.indices.tolist()) == true
    assert result.converged and result.extra["relative_error"] < 1e-4
    torch.testing.assert_close(model.factors[mode].detach(), D[:, model.indices])


def test_dictionary_cp_with_mask():
    D, factors, T, true = _dictionary_problem(1)
    mask = torch.rand(T.shape, generator=torch.Generator().manual_seed(2)) > 0.25
    model = DictionaryCP(3, dictionary=D, seed=0)
    model.fit(torch.where(mask, T, torch.zeros_like(T)), mask=mask, max_iter=200)
    assert sorted(model.indices.tolist()) == true


def test_cp_bad_input():
    D, factors, T, _ = _dictionary_problem(0)
    with pytest.raises(ValueError, match="dictionary has 15 rows but mode 1 of T has size 8"):
        DictionaryCP(3, dictionary=D, mode=1).fit(T)
    with pytest.raises(ValueError, match="dictionary must be nonnegative, got a minimum entry of -1"):
        DictionaryCP(3, dictionary=torch.cat([D, -torch.ones(15, 1, dtype=D.dtype)], dim=1))
    with pytest.raises(ValueError, match="rank r = 30 is larger than the number of atoms d = 25"):
        DictionaryCP(30, dictionary=D)
    with pytest.raises(ValueError, match="T must be nonnegative, got a minimum entry of -1"):
        NonnegativeCP(2).fit(-T)
    with pytest.raises(ValueError, match="at least 2 modes"):
        NonnegativeCP(2).fit(torch.rand(5))
    with pytest.raises(ValueError, match="mask must have T's shape"):
        NonnegativeCP(2).fit(T, mask=torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"initial factors must have shapes \[\(15, 2\)"):
        NonnegativeCP(2).fit(T, factors=[torch.rand(15, 3)] * 3)
    with pytest.raises(ValueError, match="DictionaryCP: option 'snap' must be one of 'hard', 'flexible', got 'soft'"):
        DictionaryCP(3, dictionary=D, snap="soft")
    with pytest.raises(ValueError, match="option 'atoms_init' must be one of 'match', 'subspace', got 'svd'"):
        DictionaryCP(3, dictionary=D, atoms_init="svd")
    with pytest.raises(ValueError, match="atoms_init='subspace' chooses distinct atoms"):
        DictionaryCP(3, dictionary=D, atoms_init="subspace", distinct=False)
    model = NonnegativeCP(2, seed=0)
    model.fit(T, max_iter=5, tol=0)
    before = [F.detach().clone() for F in model.factors]
    with pytest.raises(ValueError, match="nonnegative"):
        model.fit(-T)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, model.factors))


def test_dictionary_cp_flexible_reaches_atoms():
    D, factors, T, true = _dictionary_problem(0)
    model = DictionaryCP(3, dictionary=D, snap="flexible", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(T, max_iter=200)
    torch.testing.assert_close(model.factors[0].detach(), D[:, model.indices])  # snapped at the end
    assert sorted(model.indices.tolist()) == true
    assert result.extra["relative_error"] < 1e-2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dictionary_cp_subspace_init_beyond_rank(seed):
    """Rank 3 on a 20 x 2 x 2 tensor: the CP factors are not unique, the atoms are.

    From the span of the mode-0 unfolding the atoms are found exactly and the fit is
    exact (on seed 2 the default "match" start ends at wrong atoms, 13 % error).
    """
    g = torch.Generator().manual_seed(seed)
    D = torch.rand(20, 12, generator=g, dtype=torch.float64)
    true = sorted(torch.randperm(12, generator=g)[:3].tolist())
    factors = [D[:, true], torch.rand(2, 3, generator=g, dtype=torch.float64), torch.rand(2, 3, generator=g, dtype=torch.float64)]
    T = _full(factors)
    model = DictionaryCP(3, dictionary=D, atoms_init="subspace", warmup=50, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(T, max_iter=300)
    assert sorted(model.indices.tolist()) == true
    assert result.extra["relative_error"] < 1e-3


def test_dictionary_cp_relaxed_result_with_a_fixed_delta_recovers_perturbed_atoms():
    """The mode-0 factor is built from atoms the dictionary holds only approximately: the
    relaxed factor at a fixed weight lies nearer the true columns than the atoms do, and
    the reported delta is the fixed one."""
    g = torch.Generator().manual_seed(3)
    D = torch.rand(15, 25, generator=g, dtype=torch.float64)
    true = [2, 9, 17]
    A = D[:, true] * (1 + 0.2 * (torch.rand(15, 3, generator=g, dtype=torch.float64) - 0.5))
    B, C = (torch.rand(k, 3, generator=g, dtype=torch.float64) for k in (8, 9))
    T = torch.einsum("ir,jr,kr->ijk", A, B, C)
    unit = lambda F: F / F.norm(dim=0)  # noqa: E731
    model = DictionaryCP(3, dictionary=D, snap="flexible", seed=0, delta=1e-3, result="relaxed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit(T, max_iter=300)
    assert sorted(model.indices.tolist()) == true
    assert result.extra["delta"] == pytest.approx(1e-3 * float((T * T).sum()))
    order = torch.argsort(model.indices)
    relaxed = unit(model.factors[0].detach()[:, order])
    assert (relaxed - unit(A)).norm() < 0.5 * (unit(D[:, true]) - unit(A)).norm()
    snapped = DictionaryCP(3, dictionary=D, snap="flexible", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapped_result = snapped.fit(T, max_iter=300)
    assert result.extra["relative_error"] < snapped_result.extra["relative_error"]
    with pytest.raises(ValueError, match="result='relaxed' keeps the relaxed factor of snap='flexible'"):
        DictionaryCP(3, dictionary=D, result="relaxed")


def test_dictionary_cp_with_two_dictionaries_and_counts():
    """Atoms split over two dictionaries: counts force 2 from the first and 1 from the second;
    the planted atoms are found, and a count the planted split contradicts gives another split."""
    D, factors, T, true = _dictionary_problem(0)  # atoms 3, 8, 15 of 25
    D1, D2 = D[:, :12], D[:, 12:]
    model = DictionaryCP(3, dictionary=[D1, D2], counts=[2, 1], seed=0)
    result = model.fit(T, max_iter=200)
    assert sorted(model.indices.tolist()) == true  # 3 and 8 in D1, 15 (= 12 + 3) in D2
    assert result.extra["relative_error"] < 1e-4
    forced = DictionaryCP(3, dictionary=[D1, D2], counts=[1, 2], seed=0)
    forced.fit(T, max_iter=200)
    K = forced.indices.tolist()
    assert sum(k < 12 for k in K) == 1 and sum(k >= 12 for k in K) == 2
    with pytest.raises(ValueError, match="same height"):
        DictionaryCP(3, dictionary=[D1, D2[:-1]], counts=[2, 1])
    with pytest.raises(ValueError, match="counts is only used with several dictionaries"):
        DictionaryCP(3, dictionary=D, counts=[3])
    with pytest.raises(ValueError, match="atoms_init='subspace' takes one dictionary"):
        DictionaryCP(3, dictionary=[D1, D2], counts=[2, 1], atoms_init="subspace")
