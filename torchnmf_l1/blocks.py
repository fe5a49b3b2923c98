r"""Column-block sources for out-of-core NMF, block sizes from a memory budget, and the
host -> device block loader.

A data matrix X (m x n) too large for memory is read as column blocks
X_j = X[:, a_j:b_j]. Accepted sources:

- a numpy array, including a memory-mapped ``.npy`` (``np.load(path, mmap_mode="r")``);
  store the cube **Fortran-ordered** (pixel-major, ``np.save(path, np.asfortranarray(X))``)
  so that a column block is one contiguous range of the file;
- an ``h5py.Dataset`` (or anything with ``.shape`` and ``[:, a:b]`` slicing, including a
  torch tensor);
- a callable ``f(start, stop)`` returning the block (``shape=(m, n)`` must be given);
- an iterable of blocks (m x b_j arrays); a list (or any object whose ``__iter__`` starts
  afresh) can be read several times, a one-shot generator only once.

Every block is checked on the first pass over X (a dense real block with finite,
nonnegative entries; a ``TypeError``/``ValueError`` naming its columns otherwise), once:
the later passes read it unchecked. Blocks are cut by this module for the first three kinds; an iterable decides its own
block sizes (the memory budget is then the caller's responsibility).

On a CUDA device :func:`iter_device_blocks` stages each block in pinned host memory and
copies it with ``non_blocking=True`` on a side stream while the previous block is being
computed (double buffering); on the CPU it converts the block and yields it.
"""

from __future__ import annotations

import mmap
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from .checks import check_entries

__all__ = ["BlockSource", "as_block_source", "block_size_for_budget", "iter_device_blocks"]


class BlockSource:
    """A matrix read as column blocks; see the module docstring for the accepted kinds.

    Parameters
    ----------
    X : array-like, h5py.Dataset, callable or iterable
        The data (m x n), nonnegative.
    shape : tuple of int, optional
        ``(m, n)``; required for a callable, optional for an iterable (then ``n`` is
        known after the first pass).
    name : str
        How errors name the matrix (``"X"``, ``"weights"``, ``"mask"``).
    allow_nan : bool
        NaN entries are accepted (missing entries of a weighted fit); the others must be
        finite and nonnegative.
    allow_bool : bool
        Boolean blocks are accepted (a mask).
    """

    def __init__(self, X, shape=None, *, name: str = "X", allow_nan: bool = False, allow_bool: bool = False):
        self._X = X
        self.name, self.allow_nan, self.allow_bool = name, allow_nan, allow_bool
        self.kind = None
        if isinstance(X, Tensor) or (hasattr(X, "shape") and hasattr(X, "__getitem__") and not isinstance(X, (list, tuple))):
            if len(X.shape) != 2:
                raise ValueError(f"X must be a 2-D matrix (m x n), got shape {tuple(X.shape)}")
            self.kind = "sliceable"
            self.shape = (int(X.shape[0]), int(X.shape[1]))
            if shape is not None and _check_shape(shape) != self.shape:
                raise ValueError(f"shape={tuple(shape)!r} does not match X's shape {self.shape}")
            if isinstance(X, Tensor) and X.layout != torch.strided:
                raise TypeError(f"X must be dense (the blocks are column slices), got layout {X.layout}")
        elif callable(X):
            if shape is None:
                raise ValueError("a callable X(start, stop) needs shape=(m, n)")
            self.kind = "callable"
            self.shape = _check_shape(shape)
        elif hasattr(X, "__iter__"):
            self.kind = "iterable"
            self.shape = _check_shape(shape) if shape is not None else None
            self._one_shot = iter(X) is X
            self._consumed = False
        else:
            raise TypeError(
                "X must be an array (numpy, memory-mapped .npy, torch), an h5py dataset, a callable "
                f"f(start, stop) or an iterable of column blocks, got {type(X).__name__}"
            )
        if self.shape is not None and min(self.shape) < 1:
            raise ValueError(f"X must have at least one row and one column, got shape {self.shape}")
        self._checked = False  # True after one complete pass in which every block was checked

    @property
    def m(self) -> int | None:
        return None if self.shape is None else self.shape[0]

    @property
    def n(self) -> int | None:
        return None if self.shape is None else self.shape[1]

    @property
    def cuts_blocks(self) -> bool:
        """True when this source honours the block size (not an iterable)."""
        return self.kind != "iterable"

    def blocks(self, block_size: int) -> Iterator[tuple[int, int, object]]:
        """Yield ``(start, stop, block)`` with ``block`` the m x (stop - start) columns
        (checked on the first complete pass, see the module docstring)."""
        check = not self._checked
        iterator = self._raw_blocks(block_size)
        while True:  # no variable of this frame holds block j while block j+1 is read
            item = next(iterator, None)
            if item is None:
                break
            if check:
                _check_block(item[2], item[0], item[1], name=self.name, allow_nan=self.allow_nan,
                             allow_bool=self.allow_bool)
            yield item
            del item
        if check:
            self._checked = True

    def _raw_blocks(self, block_size: int) -> Iterator[tuple[int, int, object]]:
        if self.kind == "iterable":
            yield from self._iter_blocks()
            return
        m, n = self.shape
        for start in range(0, n, block_size):
            stop = min(start + block_size, n)
            if self.kind == "sliceable":
                block = self._X[:, start:stop]
                if isinstance(block, np.memmap):
                    block = self._copy_out(block)
            else:
                block = self._X(start, stop)
            if tuple(block.shape) != (m, stop - start):
                raise ValueError(f"block [{start}:{stop}] has shape {tuple(block.shape)}, expected {(m, stop - start)}")
            yield start, stop, block
            del block

    def _iter_blocks(self):
        if self._one_shot:
            if self._consumed:
                raise ValueError(
                    "X is a one-shot iterator and was already read once; pass a list or a re-iterable "
                    "object for several passes"
                )
            self._consumed = True
        start = 0
        m = self.m
        for block in self._X:
            if len(block.shape) != 2:
                raise ValueError(f"each block must be 2-D (m x b), got shape {tuple(block.shape)}")
            if m is None:
                m = int(block.shape[0])
            if block.shape[0] != m:
                raise ValueError(f"block at column {start} has {block.shape[0]} rows, expected {m}")
            stop = start + int(block.shape[1])
            yield start, stop, block
            start = stop
        if self.shape is None:
            self.shape = (m, start)
        elif start != self.shape[1]:
            raise ValueError(f"the blocks hold {start} columns, expected n={self.shape[1]}")

    def _copy_out(self, view: np.ndarray) -> np.ndarray:
        """Copy a block out of a memory-mapped file, dropping the mapped pages as it goes.

        A Fortran-ordered file (a column block is one byte range) is copied in chunks of
        about 1 MiB, each chunk's pages released after it is copied, so the block costs
        its copy plus 1 MiB; a C-ordered file is copied at once and then released.
        """
        out = np.empty(view.shape, dtype=view.dtype)
        m, b = view.shape
        step = b
        if view.flags.f_contiguous:
            step = max(1, (1 << 20) // max(1, m * view.itemsize))
        for c in range(0, b, step):
            chunk = view[:, c:c + step]
            out[:, c:c + step] = chunk
            self._release(chunk)
        return out

    def _release(self, view: np.ndarray | None = None) -> None:
        # Drop the pages of a memory-mapped file from this process's resident set after
        # each block (they stay in the page cache): without it a pass over a mapped file
        # grows the resident set to the file size although nothing is kept.
        mm = getattr(self._X, "_mmap", None)
        if mm is None and isinstance(self._X, np.ndarray) and isinstance(self._X.base, mmap.mmap):
            mm = self._X.base
        if mm is None or not hasattr(mm, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
            return
        try:
            if view is None:
                mm.madvise(mmap.MADV_DONTNEED)
                return
            base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
            first = view.ctypes.data - base
            span = sum((d - 1) * abs(st) for d, st in zip(view.shape, view.strides)) + view.itemsize
            page = mmap.PAGESIZE
            start = first - first % page
            length = min(first + span - start, len(mm) - start)
            mm.madvise(mmap.MADV_DONTNEED, start, length)
        except (OSError, ValueError, TypeError):  # pragma: no cover - platform dependent
            pass


def _check_block(block, start: int, stop: int, *, name: str = "X", allow_nan: bool = False,
                 allow_bool: bool = False) -> None:
    """A dense real block with finite, nonnegative entries (NaN too with ``allow_nan``; a
    boolean block with ``allow_bool``), or an error naming its columns."""
    name = f"{name}[:, {start}:{stop}]"
    if isinstance(block, Tensor):
        if block.layout != torch.strided:
            raise TypeError(f"{name} must be dense, got layout {block.layout}")
        if block.dtype == torch.bool and allow_bool:
            return
        if block.is_complex() or block.dtype == torch.bool:
            kind = "complex" if block.is_complex() else "boolean"
            raise TypeError(f"{name} has {kind} dtype {block.dtype}; the blocks must be real numbers")
        if block.device.type == "meta":
            raise ValueError(f"{name} is on the meta device, which holds no values")
        values = block.detach()
        check_entries(torch.nan_to_num(values, nan=0.0, posinf=float("inf"), neginf=float("-inf"))
                      if allow_nan and values.is_floating_point() else values, name)
        return
    if hasattr(block, "tocsr"):
        raise TypeError(f"{name} must be dense, got a scipy.sparse matrix")
    array = np.asarray(block)
    if array.dtype.kind == "b" and allow_bool:
        return
    if allow_nan and array.dtype.kind == "f":
        array = np.where(np.isnan(array), 0.0, array)
    if array.dtype.kind not in "iuf":
        kind = {"b": "boolean ", "c": "complex "}.get(array.dtype.kind, "")
        raise TypeError(f"{name} has {kind}dtype {array.dtype}; the blocks must be real numbers")
    if not array.size:
        return
    low, high = float(array.min()), float(array.max())  # NaN propagates: no temporary of the block's size
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} contains NaN or infinite values ({int((~np.isfinite(array)).sum())} entries)")
    if low < 0:
        raise ValueError(f"{name} has negative entries (minimum {low:.6g}); X must be >= 0")


def _check_shape(shape) -> tuple[int, int]:
    if not (isinstance(shape, (tuple, list)) and len(shape) == 2 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise ValueError(f"shape must be a pair of positive integers (m, n), got {shape!r}")
    return int(shape[0]), int(shape[1])


def as_block_source(X, shape=None, **checks) -> BlockSource:
    """``X`` itself if it is a :class:`BlockSource` (its checks set from ``checks``), else
    ``BlockSource(X, shape, **checks)``."""
    if isinstance(X, BlockSource):
        for key, value in checks.items():
            setattr(X, key, value)
        return X
    return BlockSource(X, shape, **checks)


def block_size_for_budget(
    memory_budget: int,
    m: int,
    rank: int,
    dtype: torch.dtype,
    *,
    source_itemsize: int | None = None,
    device_type: str = "cpu",
) -> int:
    r"""Largest number of columns b whose per-block working memory fits ``memory_budget`` bytes.

    Per block of b columns the streaming solvers hold (s = itemsize of ``dtype``,
    s_0 = itemsize of the source):

    - the block read from the source, m b s_0 (a copy when it comes from a file: the
      mapped pages of a memory-mapped array are dropped right after the copy),
    - its conversion to ``dtype`` when the dtypes differ, counted always, m b s,
    - on CUDA, two pinned host buffers and two device buffers (double buffering), 4 m b s,
    - the products W^T X_j, the block of H, and the HALS temporaries: 4 r b s;

    plus, independent of b, the statistics X H^T and H H^T and their new copies,
    2 (m r + r^2) s, and the 1 MiB chunk in which a block is copied out of a memory-mapped
    file (:meth:`BlockSource._copy_out`). The factors W (m x r) and H (r x n) are *not* counted: the budget
    bounds the memory on top of the factors.
    """
    if isinstance(memory_budget, bool) or not isinstance(memory_budget, int) or memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    s = torch.finfo(dtype).bits // 8
    s0 = s if source_itemsize is None else int(source_itemsize)
    per_column = m * s0 + m * s + 4 * rank * s
    if device_type == "cuda":
        per_column += 4 * m * s
    fixed = 2 * (m * rank + rank * rank) * s + (1 << 20)
    b = (memory_budget - fixed) // per_column
    if b < 1:
        raise ValueError(
            f"memory_budget={memory_budget} bytes is too small: one column needs {per_column} bytes "
            f"plus {fixed} bytes of statistics (m={m}, rank={rank}, dtype={dtype})"
        )
    return int(b)


def _to_tensor(block, dtype: torch.dtype) -> Tensor:
    if isinstance(block, Tensor):
        return block.to(dtype=dtype)
    array = np.asarray(block)
    if array.dtype.kind not in "fiub":  # booleans: a mask's blocks
        raise TypeError(f"X blocks must be real numbers, got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def iter_device_blocks(
    source: BlockSource, block_size: int, device: torch.device, dtype: torch.dtype, *, pin_memory: bool = True
) -> Iterator[tuple[int, int, Tensor]]:
    """Yield ``(start, stop, X_j)`` with ``X_j`` on ``device`` in ``dtype``.

    On CUDA (with ``pin_memory``) block j+1 is copied host -> device on a side stream
    while the caller computes on block j; the yielded tensor is valid until the next
    block is requested. On the CPU blocks are converted and yielded one at a time.
    """
    device = torch.device(device)
    if device.type != "cuda" or not pin_memory:
        # no variable of this frame may hold block j while block j+1 is read
        iterator = source.blocks(block_size)
        while True:
            item = next(iterator, None)
            if item is None:
                return
            start, stop, tensor = item[0], item[1], _to_tensor(item[2], dtype).to(device)
            del item
            yield start, stop, tensor
            del tensor
    yield from _cuda_double_buffered(source, block_size, device, dtype)


def _cuda_double_buffered(source, block_size, device, dtype):  # pragma: no cover - needs CUDA
    m = source.m
    copy_stream = torch.cuda.Stream(device)
    compute_stream = torch.cuda.current_stream(device)
    pinned, on_device = [None, None], [None, None]
    copied = [torch.cuda.Event(), torch.cuda.Event()]
    consumed = [torch.cuda.Event(), torch.cuda.Event()]

    def issue(slot, block):
        host = _to_tensor(block, dtype)
        numel = host.numel()
        if pinned[slot] is None or pinned[slot].numel() < numel:
            copied[slot].synchronize()
            pinned[slot] = torch.empty(max(numel, m * block_size), dtype=dtype, pin_memory=True)
            on_device[slot] = torch.empty(pinned[slot].numel(), dtype=dtype, device=device)
        copied[slot].synchronize()  # the previous copy out of this pinned buffer is done
        staging = pinned[slot][:numel].view(host.shape)
        staging.copy_(host)
        with torch.cuda.stream(copy_stream):
            copy_stream.wait_event(consumed[slot])  # compute finished with this device buffer
            target = on_device[slot][:numel].view(host.shape)
            target.copy_(staging, non_blocking=True)
            copied[slot].record(copy_stream)
        return target

    iterator = source.blocks(block_size)
    pending = next(iterator, None)
    if pending is None:
        return
    slot = 0
    current = (pending[0], pending[1], issue(slot, pending[2]))
    for nxt in iterator:
        nxt_slot = 1 - slot
        nxt_tensor = issue(nxt_slot, nxt[2])  # overlaps with the caller's work on `current`
        compute_stream.wait_event(copied[slot])
        yield current
        consumed[slot].record(compute_stream)
        current, slot = (nxt[0], nxt[1], nxt_tensor), nxt_slot
    compute_stream.wait_event(copied[slot])
    yield current
    consumed[slot].record(compute_stream)
