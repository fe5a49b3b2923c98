"""Diagnostics of the GPU path that run on any device: host synchronisations and aten ops.

A solver step must never read the device (no ``.item()``, ``.tolist()``, ``bool(tensor)``,
no data-dependent output shape such as ``nonzero``): on a GPU each such read stalls the
stream, and a step without any is what can be captured as one CUDA graph. These context
managers count what a piece of code does, on the CPU as on CUDA:

>>> import torch
>>> from torchnmf_l1.diagnostics import count_syncs
>>> x = torch.ones(3)
>>> with count_syncs() as syncs:
...     _ = x * 2
...     _ = float(x.sum())
>>> syncs.count, syncs.events
(1, ['Tensor.__float__'])

:func:`count_ops` counts the aten operators dispatched (the kernel launches of a GPU step).
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SyncCounter", "count_syncs", "count_ops"]

# Python-level reads of a tensor's value (caught before dispatch: tolist() never dispatches per element)
_READS = {
    torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.__bool__, torch.Tensor.__float__,
    torch.Tensor.__int__, torch.Tensor.__index__, torch.Tensor.__complex__, torch.equal, torch.allclose,
    torch.Tensor.equal, torch.Tensor.allclose,
}
# aten operators whose output shape (or value on the host) depends on the data
_DATA_DEPENDENT = {
    "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive", "is_nonzero",
    "_local_scalar_dense", "masked_scatter",
}


class SyncCounter:
    """What :func:`count_syncs` records: ``count`` and the ``events`` by name."""

    def __init__(self):
        self.events: list[str] = []

    @property
    def count(self) -> int:
        return len(self.events)


class _FunctionReads(TorchFunctionMode):
    def __init__(self, counter: SyncCounter):
        super().__init__()
        self.counter = counter
        self.inside = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _READS and not self.inside:
            self.counter.events.append(getattr(func, "__qualname__", str(func)).replace("_TensorBase", "Tensor").replace("TensorBase", "Tensor"))
        if func in (torch.Tensor.cpu, torch.Tensor.to) and args and isinstance(args[0], torch.Tensor):
            target = args[1] if len(args) > 1 else kwargs.get("device")
            if args[0].device.type != "cpu" and (func is torch.Tensor.cpu or str(target).startswith("cpu")):
                self.counter.events.append("copy to host")
        self.inside += func in _READS
        try:
            return func(*args, **kwargs)
        finally:
            self.inside -= func in _READS


class _DispatchReads(TorchDispatchMode):
    def __init__(self, counter: SyncCounter, function_reads: _FunctionReads):
        super().__init__()
        self.counter = counter
        self.function_reads = function_reads

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        reading = self.function_reads.inside
        if not reading and name in _DATA_DEPENDENT:
            self.counter.events.append(f"aten.{name}")
        elif not reading and name == "repeat_interleave" and kwargs.get("output_size") is None and len(args) < 4:
            self.counter.events.append("aten.repeat_interleave without output_size")
        elif not reading and name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ())
        ):
            self.counter.events.append("aten.index with a boolean mask")
        return func(*args, **kwargs)


@contextmanager
def count_syncs():
    """Count the host synchronisations of the code in the block (see the module docstring)."""
    counter = SyncCounter()
    reads = _FunctionReads(counter)
    with reads, _DispatchReads(counter, reads):
        yield counter


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func._schema.name.split("::")[-1]] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def count_ops():
    """Count the aten operators dispatched in the block: ``counter.ops`` (a Counter by name),
    ``sum(counter.ops.values())`` in all."""
    counter = _OpCounter()
    with counter:
        yield counter
