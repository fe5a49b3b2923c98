"""The batched weighted-median kernel against a brute-force minimiser of sum_k w_k |b_k - x|."""

from __future__ import annotations

import threading
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from torchnmf_l1.kernels import weighted_median
from torchnmf_l1.kernels.weighted_median import (
    segment_layout,
    selection_rounds,
    sort_segments,
    weighted_median_select,
)


def _objective(b, w, x):
    return float(np.sum(w * np.abs(b - x)))


def _exact_objective(b, w, x):
    """The objective in rationals (every float is one): ties are exact, not within round-off."""
    x = Fraction(float(x))
    return sum(Fraction(float(wk)) * abs(Fraction(float(bk)) - x) for bk, wk in zip(b, w))


def _brute_force(b, w, extra, nonneg=True):
    """Minimal objective over x >= 0: evaluate at every breakpoint and at 0."""
    b = np.append(np.asarray(b, float), 0.0)
    w = np.append(np.asarray(w, float), extra)
    candidates = np.append(b, 0.0)
    if nonneg:
        candidates = candidates[candidates >= 0]
    return min(_objective(b, w, x) for x in candidates), b, w


problems = st.lists(
    st.lists(
        st.tuples(
            st.sampled_from([-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 3.0]) | st.floats(-5, 5, allow_nan=False, width=32),
            st.sampled_from([0.0, 1.0, 2.0]) | st.floats(0, 4, allow_nan=False, width=32),
        ),
        min_size=0,
        max_size=7,
    ),
    min_size=1,
    max_size=6,
)


def _pack(probs, dtype):
    counts = [len(p) for p in probs]
    offsets = torch.tensor([0] + list(np.cumsum(counts)), dtype=torch.int64)
    b = torch.tensor([t[0] for p in probs for t in p], dtype=dtype)
    w = torch.tensor([t[1] for p in probs for t in p], dtype=dtype)
    return b, w, offsets


@settings(max_examples=150, deadline=None)
@given(problems, st.lists(st.sampled_from([0.0, 0.5, 3.0]), min_size=6, max_size=6), st.booleans(), st.booleans())
def test_weighted_median_is_a_minimiser(probs, extras, use_extra, use_layout):
    dtype = torch.float64
    b, w, offsets = _pack(probs, dtype)
    S = len(probs)
    extra = torch.tensor(extras[:S], dtype=dtype) if use_extra else None
    default = torch.full((S,), 7.0, dtype=dtype)
    layout = segment_layout(offsets, extra=use_extra) if use_layout else None
    got = weighted_median(b, w, offsets, extra_weight=extra, default=default, layout=layout)
    seg_ids = torch.repeat_interleave(torch.arange(S), offsets[1:] - offsets[:-1])
    got_ids = weighted_median(b, w, segment_ids=seg_ids, num_segments=S, extra_weight=extra, default=default)
    torch.testing.assert_close(got, got_ids, msg="offsets and segment ids layouts disagree")
    for s, p in enumerate(probs):
        bs = np.array([t[0] for t in p]); ws = np.array([t[1] for t in p])
        e = float(extra[s]) if use_extra else 0.0
        best, ball, wall = _brute_force(bs, ws, e)
        x = float(got[s])
        if wall.sum() == 0:
            assert x == 7.0, f"all weights zero: expected the default 7, got {x}"
            continue
        assert x >= 0
        assert _objective(ball, wall, x) <= best + 1e-9 * (1 + best), f"problem {s}: x={x} is not a minimiser"
        # tie rule: the smallest minimiser over x >= 0
        # tie rule, in exact rational arithmetic: every candidate below x is strictly worse
        smaller = [c for c in np.append(ball, 0.0) if 0 <= c < x]
        assert all(_exact_objective(ball, wall, c) > _exact_objective(ball, wall, x) for c in smaller), (
            f"problem {s}: x={x} is not the lower median"
        )


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 10_000))
def test_dense_layout_matches_segmented(L, S, seed):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(L, S, generator=g, dtype=torch.float64).round(decimals=1)
    w = torch.rand(L, S, generator=g, dtype=torch.float64).round(decimals=1)
    extra = torch.rand(S, generator=g, dtype=torch.float64)
    dense = weighted_median(b, w, extra_weight=extra)
    offsets = torch.arange(S + 1) * L
    seg = weighted_median(b.t().reshape(-1), w.t().reshape(-1), offsets, extra_weight=extra)
    torch.testing.assert_close(dense, seg, msg="dense (column) layout and CSR layout disagree")


def test_edge_cases(device, dtype):
    like = dict(device=device, dtype=dtype)
    # segments: single term; ties; zero weights; all weights zero; all negative; empty
    b = torch.tensor([2.5, 1.0, 1.0, 3.0, 9.0, 0.5, 4.0, 5.0, -1.0, -3.0], **like)
    w = torch.tensor([2.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0], **like)
    offsets = torch.tensor([0, 1, 4, 6, 8, 10, 10], device=device)
    default = torch.tensor([-1.0, -1.0, -1.0, 8.0, -1.0, 6.0], **like)
    got = weighted_median(b, w, offsets, default=default)
    # ties 1,1,3 (w=1,1,1): lower median 1; [9 (w 0), 0.5 (w 1)] -> 0.5 (zero weight never chosen)
    expected = torch.tensor([2.5, 1.0, 0.5, 8.0, 0.0, 6.0], **like)
    torch.testing.assert_close(got, expected, msg="edge cases")
    no_clamp = weighted_median(b, w, offsets, default=default, nonneg=False)
    assert float(no_clamp[4]) == -3.0
    # exact half: [1 (w 1), 3 (w 1)] -> lower median 1
    two = weighted_median(torch.tensor([3.0, 1.0], **like), torch.tensor([1.0, 1.0], **like), torch.tensor([0, 2], device=device))
    assert float(two[0]) == 1.0
    # without default, all-zero weights give 0
    z = weighted_median(torch.tensor([3.0], **like), torch.tensor([0.0], **like), torch.tensor([0, 1], device=device))
    assert float(z[0]) == 0.0
    # the extra breakpoint at 0 wins when it carries more than half the weight
    e = weighted_median(torch.tensor([3.0, 4.0], **like), torch.tensor([1.0, 1.0], **like), torch.tensor([0, 2], device=device),
                        extra_weight=torch.tensor([2.5], **like))
    assert float(e[0]) == 0.0


def test_float32_large_matches_float64():
    g = torch.Generator().manual_seed(0)
    S, N = 50, 5000
    seg = torch.sort(torch.randint(0, S, (N,), generator=g)).values
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(seg, minlength=S), 0)])
    b = torch.randn(N, generator=g, dtype=torch.float64).float().double()
    w = torch.rand(N, generator=g, dtype=torch.float64).float().double()
    r64 = weighted_median(b, w, offsets, nonneg=False)
    r32 = weighted_median(b.float(), w.float(), offsets, nonneg=False)
    lay = segment_layout(offsets)
    r32b = weighted_median(b.float(), w.float(), offsets, nonneg=False, layout=lay)
    torch.testing.assert_close(r32.double(), r64, msg="float32 single-sort key path")
    torch.testing.assert_close(r32b.double(), r64, msg="float32 bucketed path")


def test_bad_input():
    b = torch.zeros(3)
    with pytest.raises(ValueError, match="same shape"):
        weighted_median(b, torch.zeros(2), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="float32 or float64"):
        weighted_median(b.long(), b.long(), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="exactly one of"):
        weighted_median(b, b)
    with pytest.raises(ValueError, match="num_segments"):
        weighted_median(b, b, segment_ids=torch.zeros(3, dtype=torch.long))


class _ThreadGroup:
    """P ranks as threads in one process, with all-gather / all-reduce through a barrier."""

    def __init__(self, world: int):
        self.barrier = threading.Barrier(world)
        self.slots = [None] * world

    def collectives(self, rank: int):
        def all_gather(tensor):
            self.slots[rank] = tensor
            self.barrier.wait()
            out = torch.stack(self.slots)
            self.barrier.wait()
            return out

        return (lambda tensor: all_gather(tensor).sum(0)), all_gather


def _select_over_ranks(b, w, offsets, extra, default, world, owner, extra_owner):
    """Split every segment's breakpoints over ``world`` thread-ranks and select the median."""
    S = offsets.numel() - 1
    segment = torch.repeat_interleave(torch.arange(S, device=b.device), offsets[1:] - offsets[:-1])
    shares, longest = [], 1
    for rank in range(world):
        mine = owner == rank
        counts = torch.bincount(segment[mine], minlength=S)
        local_offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        layout = segment_layout(local_offsets, extra=True)
        local_extra = torch.where(extra_owner == rank, extra, 0.0)
        shares.append(sort_segments(b[mine], w[mine], layout, extra_weight=local_extra))
        longest = max(longest, int(counts.max()) + 1 if S else 1)
    group, results = _ThreadGroup(world), [None] * world

    def run(rank):
        all_reduce, all_gather = group.collectives(rank)
        results[rank] = weighted_median_select(shares[rank], all_reduce=all_reduce, all_gather=all_gather,
                                               rounds=selection_rounds(longest), default=default)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_distributed_selection_equals_weighted_median(world, device, dtype):
    """The selection over ranks returns exactly the median of the union, on every rank,
    with ties, zero weights, empty segments and segments whose whole weight is on one rank."""
    like = dict(device=device, dtype=dtype)
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        S = 9
        counts = torch.randint(0, 40, (S,), generator=g)
        counts[0] = 0
        offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]).to(device)
        N = int(counts.sum())
        b = torch.randn(N, generator=g, dtype=torch.float64)
        w = torch.rand(N, generator=g, dtype=torch.float64)
        if seed % 2:  # coarse grids: many exact ties, and exact half totals
            b, w = torch.round(2 * b) / 2, torch.round(4 * w) / 4
        w[torch.rand(N, generator=g) < 0.2] = 0
        extra = torch.round(4 * torch.rand(S, generator=g, dtype=torch.float64)) / 4
        default = torch.randn(S, generator=g, dtype=torch.float64)
        b, w, extra, default = (t.to(**like) for t in (b, w, extra, default))
        owner = torch.randint(0, world, (N,), generator=g).to(device)
        if seed % 3 == 0:
            owner = torch.zeros_like(owner)  # every breakpoint on rank 0, the others empty
        extra_owner = torch.randint(0, world, (S,), generator=g).to(device)
        expected = weighted_median(b, w, offsets, extra_weight=extra, default=default,
                                   layout=segment_layout(offsets, extra=True))
        for rank, got in enumerate(_select_over_ranks(b, w, offsets, extra, default, world, owner, extra_owner)):
            assert torch.equal(got, expected), f"seed {seed}, rank {rank} of {world}: {got} != {expected}"


def test_selection_rounds_are_enough_and_needed():
    """floor(log2(L)) + 1 rounds find the median of L breakpoints on one rank; one round fewer may not."""
    assert [selection_rounds(n) for n in (0, 1, 2, 3, 4, 7, 8, 1000)] == [1, 1, 2, 2, 3, 3, 4, 10]
    L = 64
    b = torch.arange(L, dtype=torch.float64)
    w = torch.full((L,), 1e-3, dtype=torch.float64)
    w[-1] = 1.0  # the median is the last breakpoint: every pivot falls below it, halving the count
    offsets = torch.tensor([0, L])
    share = sort_segments(b, w, segment_layout(offsets, extra=True), extra_weight=torch.zeros(1, dtype=torch.float64))
    one_rank = dict(all_reduce=lambda t: t, all_gather=lambda t: t.unsqueeze(0),
                    default=torch.tensor([7.5], dtype=torch.float64))
    assert float(weighted_median_select(share, rounds=selection_rounds(L + 1), **one_rank)[0]) == L - 1
    short = weighted_median_select(share, rounds=selection_rounds(L + 1) - 1, **one_rank)
    assert float(short[0]) == 7.5, "one round fewer leaves the median unfound (the default is returned)"


def test_merged_buckets_give_the_same_medians():
    # bucket_cost=0: one bucket per length class (the path of large problems); the default
    # merges small buckets. Both must give the same medians, bit for bit.
    from torchnmf_l1.kernels.weighted_median import segment_layout

    g = torch.Generator().manual_seed(3)
    lengths = torch.randint(0, 40, (300,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)])
    N = int(offsets[-1])
    b = torch.randn(N, generator=g, dtype=torch.float64)
    w = torch.rand(N, generator=g, dtype=torch.float64)
    extra = torch.rand(300, generator=g, dtype=torch.float64)
    split = segment_layout(offsets, extra=True, bucket_cost=0)
    merged = segment_layout(offsets, extra=True)
    assert len(split.buckets) > len(merged.buckets) >= 1
    expected = weighted_median(b, w, offsets, extra_weight=extra)
    for layout in (split, merged):
        torch.testing.assert_close(weighted_median(b, w, offsets, extra_weight=extra, layout=layout), expected, rtol=0, atol=0)
