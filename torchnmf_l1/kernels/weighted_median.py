r"""Batched, exact, segmented weighted median: the scalar step of L1 coordinate descent.

For each problem (segment) :math:`s` with breakpoints :math:`b_k` and weights
:math:`w_k \ge 0`, :math:`k \in s`, the kernel returns a minimiser of

.. math:: \phi_s(x) = \sum_{k \in s} w_k |b_k - x| \; (+\; e_s |0 - x|) \qquad \text{over } x \ge 0

(or over :math:`x \in \mathbb{R}` with ``nonneg=False``), where :math:`e_s` is an optional
extra weight on a breakpoint at 0 (the collapsed zeros of a column of X in L1-NMF, plus
an L1 penalty). Many problems of different lengths are solved in one call with no
Python loop over problems and no host synchronisation: one sort by (segment,
breakpoint), one cumulative sum, one ``torch.searchsorted``.

Tie rule
--------
The *lower weighted median* is returned: after sorting a segment's breakpoints in
increasing order with cumulative weights :math:`c_k`, the first breakpoint with
:math:`c_k \ge \tfrac12 \sum_k w_k`. It is the smallest minimiser of :math:`\phi_s`
(the minimisers form the interval between this breakpoint and the next one when
:math:`c_k = \tfrac12 \sum w` exactly). A breakpoint of weight zero is never returned
(unless all weights are zero). With ``nonneg=True`` the result is clamped at 0, which is
the smallest minimiser over :math:`x \ge 0` since :math:`\phi_s` is convex.

All weights zero, or an empty segment: :math:`\phi_s` is constant, every x is optimal,
and ``default[s]`` is returned (the current value in coordinate descent, so that the
iterate does not move), or 0 when ``default`` is None.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "SegmentLayout",
    "SortedSegments",
    "segment_layout",
    "segment_median_candidate",
    "segment_weight_up_to",
    "selection_rounds",
    "sort_segments",
    "weighted_median",
    "weighted_median_select",
]


def _sort_key_float32(values: Tensor) -> Tensor:
    """An int64 in [0, 2^32) with the order of the float32 ``values`` (IEEE bits, sign-flipped)."""
    bits = values.contiguous().view(torch.int32).to(torch.int64)
    ordered = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)
    return ordered + 2**31


def _segment_order(breakpoints: Tensor, segment_ids: Tensor) -> Tensor:
    """Permutation sorting the entries by (segment, breakpoint)."""
    if breakpoints.dtype == torch.float32:
        # one int64 sort on the exact lexicographic key (segment << 32) | ordered float bits
        key = (segment_ids << 32) | _sort_key_float32(breakpoints)
        return torch.sort(key).indices
    # float64 has no room for the segment in 64 bits: stable sort on the breakpoints,
    # then a stable sort on the segment ids.
    order = torch.sort(breakpoints, stable=True).indices
    return order[torch.sort(segment_ids[order], stable=True).indices]


class SegmentLayout:
    """Precomputed padded buckets of a fixed segmentation (see :func:`segment_layout`).

    Segments are grouped by length into buckets of widths 1, 2, 3, 4, 6, 8, 12, ...; bucket ``k`` is an
    ``(n_k, L_k)`` index into the entries (with the extra breakpoints appended after the
    N entries, and one padding slot after them), so that each call sorts short rows
    (``torch.sort(dim=1)``) instead of one long array: O(N log L) instead of
    O(N log N), and much better parallelism. One Python step per bucket (about
    2 log2 of the longest segment), never per problem.
    """

    def __init__(self, num_entries: int, num_segments: int, extra: bool, buckets):
        self.num_entries = num_entries
        self.num_segments = num_segments
        self.extra = extra
        self.buckets = buckets  # list of (segment ids (n_k,), gather index (n_k, L_k))


def segment_layout(offsets: Tensor, *, extra: bool = False, bucket_cost: int = 16384) -> SegmentLayout:
    """Bucketed layout of the CSR segmentation ``offsets`` (length S + 1), built once.

    This is the one place with a host synchronisation (the bucket sizes); build it
    once per sparsity pattern and pass it to :func:`weighted_median` as ``layout=``.
    ``extra=True`` reserves a slot for the extra breakpoint at 0 of each segment.

    ``bucket_cost``: the fixed cost of one more bucket (its dozen kernel launches per
    median), in padded entries. Neighbouring buckets are merged into the wider one while
    the padding this adds stays below it: a small problem sorts one or two padded blocks
    instead of a launch-bound handful (sCD, r = 20, 80 % zeros: 26 -> 17 ms per
    iteration on 100 x 200, 80 -> 54 ms on 300 x 400, 2 CPU threads), a large one keeps
    its buckets, where padding would cost more than the launches.
    """
    offsets = offsets.to(torch.int64)
    device = offsets.device
    S = offsets.numel() - 1
    N = int(offsets[-1])
    counts = offsets[1:] - offsets[:-1]
    lengths = counts + int(extra)
    # bucket widths 1, 2, 3, 4, 6, 8, 12, 16, 24, ... (ratio <= 1.5: little padding)
    widths = sorted({1 << k for k in range(40)} | {3 << k for k in range(40)})
    widths = torch.tensor([x for x in widths if x <= max(2 * int(lengths.max()) if S else 1, 1)], device=device)
    bucket = torch.searchsorted(widths, lengths.clamp_min(1))
    present, sizes = torch.unique(bucket, return_counts=True)
    present, sizes = present.tolist(), sizes.tolist()
    groups = []  # (bucket ids, width): consecutive buckets merged upward while the padding is cheap
    for k, size in zip(present, sizes):
        width = int(widths[k])
        if groups:
            ids, group_width, group_size = groups[-1]
            if group_size * (width - group_width) < bucket_cost:
                groups[-1] = (ids + [k], width, group_size + size)
                continue
        groups.append(([k], width, size))
    buckets = []
    pad = N + S  # index of the padding slot (breakpoint +inf, weight 0)
    for ids, L, _ in groups:
        member = bucket == ids[0]
        for k in ids[1:]:
            member = member | (bucket == k)
        segs = torch.nonzero(member).flatten()
        pos = torch.arange(L, device=device)
        start = offsets[segs].unsqueeze(1)
        cnt = counts[segs].unsqueeze(1)
        index = torch.where(pos < cnt, start + pos, pad)
        if extra:
            index = torch.where(pos == cnt, N + segs.unsqueeze(1), index)
        buckets.append((segs, index))
    return SegmentLayout(N, S, extra, buckets)


def _half(total: Tensor, magnitude: Tensor) -> Tensor:
    """Half the total weight, lowered by the round-off of the cumulative sums.

    A cumulative weight that equals half the total in exact arithmetic (a tie: every
    point between two breakpoints minimises) can come out a few ulps short of it; the
    lower median is the rule, so the comparison allows ``16 eps`` of the largest
    cumulative sum involved (``magnitude``).
    """
    return 0.5 * total - 16 * torch.finfo(total.dtype).eps * magnitude


def _bucketed_weighted_median(b, w, layout: SegmentLayout, extra_weight, default, nonneg):
    sorted_segments = sort_segments(b, w, layout, extra_weight=extra_weight)
    total = sorted_segments.total
    out = b.new_empty(layout.num_segments)
    for segs, values, cum in sorted_segments.buckets:
        half = _half(cum[:, -1:], cum[:, -1:])
        k = torch.searchsorted(cum, half, side="left").clamp_max(values.shape[1] - 1)
        out.index_copy_(0, segs, torch.gather(values, 1, k).squeeze(1))
    fallback = default.to(b.dtype) if default is not None else b.new_zeros(layout.num_segments)
    out = torch.where(total > 0, out, fallback)
    return out.clamp_min(0) if nonneg else out


def weighted_median(
    breakpoints: Tensor,
    weights: Tensor,
    offsets: Tensor | None = None,
    *,
    segment_ids: Tensor | None = None,
    num_segments: int | None = None,
    extra_weight: Tensor | None = None,
    default: Tensor | None = None,
    nonneg: bool = True,
    layout: SegmentLayout | None = None,
) -> Tensor:
    r"""Lower weighted median of many independent problems at once (segmented or dense).

    Signature and layouts
    ---------------------
    ``weighted_median(breakpoints, weights, offsets=None, *, segment_ids=None,
    num_segments=None, extra_weight=None, default=None, nonneg=True, layout=None) -> Tensor``

    * **CSR/CSC layout**: 1-D ``breakpoints`` and ``weights`` of length N grouped by
      problem, with ``offsets`` (int64, length S + 1, ``offsets[0] = 0``,
      ``offsets[S] = N``): problem s owns entries ``offsets[s]:offsets[s+1]`` (the
      ``crow_indices`` of a CSR matrix whose rows are the problems).
    * **Segment ids**: 1-D inputs in any order with ``segment_ids`` (int64, values in
      ``[0, num_segments)``) and ``num_segments`` (required, so there is no host sync).
    * **Dense layout**: 2-D ``breakpoints`` and ``weights`` of shape (L, S) and neither
      offsets nor segment ids: column s is problem s (every column has L terms).

    Parameters
    ----------
    breakpoints : Tensor, float32 or float64
        The points :math:`b_k`. Entries whose weight is zero may hold any finite value.
    weights : Tensor, same shape, dtype and device
        Nonnegative weights :math:`w_k` (not checked: no host sync).
    offsets, segment_ids, num_segments
        The segmentation, see above.
    extra_weight : Tensor, shape (S,), optional
        Weight :math:`e_s \ge 0` of one extra breakpoint at 0 per problem (L1-NMF: the
        collapsed zeros of a column, :math:`\lambda(\sum_i W_{ip} - \sum_{i \in \Omega_q} W_{ip})`).
    default : Tensor, shape (S,), optional
        Returned where a problem's total weight is zero (or it is empty); 0 when None.
    nonneg : bool
        Clamp the median at 0 (minimise over :math:`x \ge 0`).
    layout : SegmentLayout, optional
        From :func:`segment_layout` (offsets layout only): sorts short padded rows per
        length bucket instead of one global sort; same result, several times faster on
        long inputs. Built once per sparsity pattern (one host sync there, none here).

    Returns
    -------
    Tensor, shape (S,)
        The lower weighted median of each problem, same dtype and device as ``breakpoints``.

    Notes
    -----
    Cost O(N log N) for one sort of N (+ S) entries. In the segmented layouts the weights
    of each problem are scaled to sum to one and summed in float64, so that the one
    cumulative sum over all problems keeps each problem's half-total exact enough (a
    problem with tiny weights after problems with large ones is not lost). A cumulative
    weight within a few ulps of half the total counts as reaching it: exact ties go to
    the lower median whatever the round-off.

    References
    ----------
    Q. Ke and T. Kanade, "Robust L1 norm factorization in the presence of outliers and
    missing data by alternative convex programming", CVPR 2005.
    N. Gillis, *Nonnegative Matrix Factorization*, SIAM, 2020 (chapter on L1-NMF).
    """
    if breakpoints.shape != weights.shape:
        raise ValueError(f"breakpoints and weights must have the same shape, got {tuple(breakpoints.shape)} and {tuple(weights.shape)}")
    if breakpoints.dtype not in (torch.float32, torch.float64) or weights.dtype != breakpoints.dtype:
        raise TypeError(f"breakpoints and weights must both be float32 or float64, got {breakpoints.dtype} and {weights.dtype}")
    if breakpoints.dim() == 2 and offsets is None and segment_ids is None:
        return _dense_weighted_median(breakpoints, weights, extra_weight, default, nonneg)
    if breakpoints.dim() != 1:
        raise ValueError(f"segmented breakpoints must be 1-D, got shape {tuple(breakpoints.shape)}")
    if layout is not None:
        return _bucketed_weighted_median(breakpoints, weights, layout, extra_weight, default, nonneg)
    device = breakpoints.device
    if (offsets is None) == (segment_ids is None):
        raise ValueError("give exactly one of offsets= and segment_ids= for 1-D breakpoints")
    if offsets is not None:
        offsets = offsets.to(device=device, dtype=torch.int64)
        S = offsets.numel() - 1
        if S < 0:
            raise ValueError("offsets must have length >= 1 (S + 1)")
        counts = offsets[1:] - offsets[:-1]
        segment_ids = torch.repeat_interleave(torch.arange(S, device=device), counts, output_size=breakpoints.numel())
    else:
        if num_segments is None:
            raise ValueError("segment_ids= needs num_segments=")
        S = int(num_segments)
        segment_ids = segment_ids.to(device=device, dtype=torch.int64)
        counts = torch.zeros(S, device=device, dtype=torch.int64).index_add_(
            0, segment_ids, torch.ones_like(segment_ids)
        )
    if extra_weight is not None:
        if extra_weight.shape != (S,):
            raise ValueError(f"extra_weight must have shape ({S},), got {tuple(extra_weight.shape)}")
        breakpoints = torch.cat([breakpoints, breakpoints.new_zeros(S)])
        weights = torch.cat([weights, extra_weight.to(weights.dtype)])
        segment_ids = torch.cat([segment_ids, torch.arange(S, device=device)])
        counts = counts + 1
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    order = _segment_order(breakpoints, segment_ids)
    b = breakpoints[order]
    # Each problem's weights are scaled to sum to 1 before the one global cumulative sum,
    # so a problem with tiny weights after one with large weights keeps its own precision.
    weights = weights.to(torch.float64)
    total = torch.zeros(S, device=device, dtype=torch.float64).index_add_(0, segment_ids, weights)
    shares = weights / torch.where(total > 0, total, 1.0).index_select(0, segment_ids)
    cum = torch.cumsum(shares[order], 0)
    cum0 = torch.cat([cum.new_zeros(1), cum])  # cum0[k] = shares of the first k sorted entries
    low, high = cum0[starts], cum0[ends]
    target = low + _half(torch.ones_like(low), high)
    idx = torch.searchsorted(cum, target, side="left")  # first k with cum0[k+1] >= target
    last = (ends - 1).clamp_min(0)
    idx = torch.minimum(torch.maximum(idx, starts), last).clamp_max(max(b.numel() - 1, 0))
    if b.numel() == 0:
        median = breakpoints.new_zeros(S)
    else:
        median = b[idx]
    fallback = default.to(median.dtype) if default is not None else median.new_zeros(())
    median = torch.where(total > 0, median, fallback)
    return median.clamp_min(0) if nonneg else median


def _dense_weighted_median(b: Tensor, w: Tensor, extra_weight, default, nonneg: bool) -> Tensor:
    """Weighted median of each column of (L x S) breakpoints: a sort along dim 0."""
    L, S = b.shape
    if extra_weight is not None:
        if extra_weight.shape != (S,):
            raise ValueError(f"extra_weight must have shape ({S},), got {tuple(extra_weight.shape)}")
        b = torch.cat([b, b.new_zeros(1, S)])
        w = torch.cat([w, extra_weight.to(w.dtype).reshape(1, S)])
    bs, order = torch.sort(b, dim=0)
    cum = torch.cumsum(torch.gather(w, 0, order), dim=0)
    total = cum[-1:] if cum.shape[0] else cum.new_zeros(1, S)
    # first row whose cumulative weight reaches half the total, per column
    idx = torch.searchsorted(cum.transpose(0, 1).contiguous(), _half(total, total).transpose(0, 1).contiguous(), side="left")
    idx = idx.clamp_max(max(cum.shape[0] - 1, 0))
    median = torch.gather(bs, 0, idx.transpose(0, 1)).reshape(S) if cum.shape[0] else b.new_zeros(S)
    fallback = default.to(median.dtype) if default is not None else median.new_zeros(())
    median = torch.where(total.reshape(S) > 0, median, fallback)
    return median.clamp_min(0) if nonneg else median


class SortedSegments:
    """The breakpoints of a segmented problem sorted once, for repeated rank queries.

    Built by :func:`sort_segments`. Bucket ``k`` holds ``(segs, values, cum)``: the
    segment ids (n_k,), each segment's breakpoints sorted increasingly (n_k, L_k), the
    padding last as ``+inf``, and their cumulative weights (n_k, L_k). ``total`` (S,) is each segment's weight. Both the
    single-process :func:`weighted_median` (with ``layout=``) and the distributed
    :func:`weighted_median_select` read it.
    """

    def __init__(self, buckets, total: Tensor):
        self.buckets = buckets
        self.total = total


def sort_segments(breakpoints: Tensor, weights: Tensor, layout: SegmentLayout, *, extra_weight: Tensor | None = None) -> SortedSegments:
    """Sort each segment of a bucketed layout once (see :class:`SortedSegments`).

    Same inputs as :func:`weighted_median` with ``layout=``; the padding slots sort
    last as ``+inf`` with weight zero.
    """
    S, N = layout.num_segments, layout.num_entries
    if breakpoints.numel() != N or weights.shape != breakpoints.shape:
        raise ValueError(f"layout was built for {N} entries, got breakpoints {tuple(breakpoints.shape)} and weights {tuple(weights.shape)}")
    if (extra_weight is not None) != layout.extra:
        raise ValueError("extra_weight must be given exactly when the layout was built with extra=True")
    ext = extra_weight.to(weights.dtype) if extra_weight is not None else weights.new_zeros(S)
    w_ext = torch.cat([weights, ext, weights.new_zeros(1)])
    b_ext = torch.cat([breakpoints, breakpoints.new_zeros(S), breakpoints.new_full((1,), float("inf"))])
    total = breakpoints.new_zeros(S)
    buckets = []
    for segs, index in layout.buckets:
        shape = index.shape
        flat = index.view(-1)
        rows = b_ext.index_select(0, flat).view(shape)
        if rows.dtype == torch.float32:
            # sorting the order-preserving int32 image of the floats is faster than a float sort
            bits = rows.view(torch.int32)
            order = torch.sort(torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF), dim=1).indices
            values = torch.gather(rows, 1, order)
        else:
            values, order = torch.sort(rows, dim=1)
        cum = torch.cumsum(torch.gather(w_ext.index_select(0, flat).view(shape), 1, order), dim=1)
        total.index_copy_(0, segs, cum[:, -1])
        buckets.append((segs, values, cum))
    return SortedSegments(buckets, total)


def segment_median_candidate(sorted_segments: SortedSegments, low: Tensor, high: Tensor) -> Tensor:
    """Per segment, the lower median *by count* of its breakpoints in the open interval (low, high).

    ``low``, ``high``: (S,). NaN where a segment has no breakpoint in the interval.
    Used as the pivot of the distributed selection: whichever side of the weighted
    median it falls on, at least half of the segment's remaining breakpoints are
    eliminated (a pivot of weight zero included: it is the median only if it equals it).
    """
    out = low.new_full(low.shape, float("nan"))
    for segs, values, _ in sorted_segments.buckets:
        lo = torch.searchsorted(values, low.index_select(0, segs).unsqueeze(1).contiguous(), right=True)
        hi = torch.searchsorted(values, high.index_select(0, segs).unsqueeze(1).contiguous(), right=False)
        count = hi - lo
        index = (lo + torch.div(count - 1, 2, rounding_mode="floor")).clamp(0, values.shape[1] - 1)
        pivot = torch.gather(values, 1, index).squeeze(1)
        out.index_copy_(0, segs, torch.where(count.squeeze(1) > 0, pivot, float("nan")))
    return out


def _prefix_weight(cum: Tensor, count: Tensor) -> Tensor:
    """Weight of the first ``count`` sorted breakpoints of each row (0 for none)."""
    return torch.where(count > 0, torch.gather(cum, 1, (count - 1).clamp_min(0)), 0.0)


def segment_weight_up_to(sorted_segments: SortedSegments, points: Tensor) -> Tensor:
    """Weight of each segment's breakpoints ``<= t`` and ``< t`` for P query points per segment.

    ``points``: (P, S), finite. Returns (2, P, S): ``[weight(b <= t), weight(b < t)]``.
    """
    P, S = points.shape
    out = points.new_zeros(2, P, S)
    for segs, values, cum in sorted_segments.buckets:
        queries = points.index_select(1, segs).transpose(0, 1).contiguous()  # (n_k, P)
        at_most, below = (_prefix_weight(cum, torch.searchsorted(values, queries, right=right)) for right in (True, False))
        out.index_copy_(2, segs, torch.stack([at_most, below]).transpose(1, 2))
    return out


def selection_rounds(longest_segment: int) -> int:
    """Rounds of :func:`weighted_median_select` that suffice for segments of at most this length.

    Each round at least halves every rank's count of candidate breakpoints per segment
    (``c -> floor(c / 2)``), and the median is found before a count reaches 0:
    ``floor(log2(longest)) + 1`` rounds.
    """
    return max(int(longest_segment), 1).bit_length()


def weighted_median_select(
    sorted_segments: SortedSegments,
    *,
    all_reduce,
    all_gather,
    rounds: int,
    default: Tensor | None = None,
    nonneg: bool = True,
) -> Tensor:
    r"""Exact lower weighted median of segments whose breakpoints are spread over several ranks.

    Every rank holds a share of the breakpoints of the same S segments (in L1-NMF: the
    terms of one row of W from its own columns of X) and calls this function with its
    share sorted by :func:`sort_segments`; all ranks return the lower weighted median of
    the union, the value :func:`weighted_median` would return on all the breakpoints
    together (the first breakpoint :math:`v` with :math:`C(\le v) \ge \tfrac12 C_{total}`).

    Distributed selection, no breakpoint leaves its rank: each segment keeps an open
    interval (low, high) that contains the median. In each round every rank proposes the
    median by count of its breakpoints inside the interval; the P proposals are
    gathered, every rank computes the weights ``C(<= t)`` and ``C(< t)`` of its
    breakpoints at each proposal, and these are summed over the ranks. A proposal t with
    :math:`C(<t) < \tfrac12 C_{total} \le C(\le t)` is the median; otherwise it bounds
    the interval from below or above. Each proposal eliminates at least half of its
    rank's remaining breakpoints, so ``rounds = selection_rounds(longest local
    segment)`` rounds suffice; no host synchronisation inside.

    Parameters
    ----------
    sorted_segments : SortedSegments
        This rank's breakpoints (and extra breakpoint at 0), from :func:`sort_segments`.
    all_reduce : callable
        ``all_reduce(tensor) -> tensor`` summed over the ranks (identity on one rank).
    all_gather : callable
        ``all_gather(tensor) -> tensor`` of shape ``(P, *tensor.shape)`` (``unsqueeze(0)`` on one rank).
    rounds : int
        The same on every rank: :func:`selection_rounds` of the longest segment of any rank.
    default : Tensor, shape (S,), optional
        Returned where the total weight of a segment is zero; 0 when None.
    nonneg : bool
        Clamp the median at 0.

    Returns
    -------
    Tensor, shape (S,)
        Identical on every rank.

    Communication: ``rounds`` times an all-gather of S numbers per rank and an
    all-reduce of 2 P S numbers, plus one all-reduce of S numbers.

    References
    ----------
    A. Saukas and S. W. Song, "A note on parallel selection on coarse-grained
    multicomputers", Algorithmica 24, 1999 (selection by medians of local medians).
    """
    total = all_reduce(sorted_segments.total.clone())
    half = _half(total, total)
    S = total.shape[0]
    inf = float("inf")
    low = total.new_full((S,), -inf)
    high = total.new_full((S,), inf)
    value = total.new_full((S,), inf)
    for _ in range(rounds):
        proposals = all_gather(segment_median_candidate(sorted_segments, low, high))  # (P, S)
        valid = ~torch.isnan(proposals)
        at_most, below = all_reduce(segment_weight_up_to(sorted_segments, torch.where(valid, proposals, 0.0))).unbind(0)
        reaches = valid & (at_most >= half)
        hit = reaches & (below < half)
        value = torch.minimum(value, torch.where(hit, proposals, inf).amin(0))
        high = torch.minimum(high, torch.where(reaches & ~hit, proposals, inf).amin(0))
        low = torch.maximum(low, torch.where(valid & ~reaches, proposals, -inf).amax(0))
    fallback = default.to(total.dtype) if default is not None else total.new_zeros(S)
    # value stays +inf only where the total weight is zero (or a weight underflowed to +inf breakpoints)
    median = torch.where((total > 0) & torch.isfinite(value), value, fallback)
    return median.clamp_min(0) if nonneg else median
