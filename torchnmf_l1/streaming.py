r"""Out-of-core NMF: :class:`StreamingNMF` fits X (m x n) read as column blocks.

.. math:: \min_{W, H \ge 0} \tfrac12 \|X - WH\|_F^2 + \text{penalties}

X can be a memory-mapped ``.npy``, an HDF5 dataset, a callable or an iterable of
column blocks (:mod:`torchnmf_l1.blocks`). The block size is given, or chosen from a
memory budget in bytes (:func:`torchnmf_l1.blocks.block_size_for_budget`). The solvers
are registered under ``model="streaming"``: ``"hals"`` (exact block-streaming HALS, the
same iterates as in-memory HALS) and ``"online"`` (minibatch HALS with a forgetting
factor); see :mod:`torchnmf_l1.solvers.streaming`. Long fits can write atomic checkpoints
and resume from them (:mod:`torchnmf_l1.checkpoint`).

References
----------
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
J. Mairal, F. Bach, J. Ponce and G. Sapiro, "Online learning for matrix factorization
and sparse coding", JMLR 11, 2010.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .blocks import BlockSource, as_block_source, block_size_for_budget, iter_device_blocks
from .checkpoint import CheckpointedSolver, load_checkpoint, restore_checkpoint
from .data import check_factor
from .fit import FitResult, run_fit
from .init import make_generator
from .registry import get_solver

__all__ = ["StreamingNMF"]

DEFAULT_BLOCK_SIZE = 8192


class StreamingNMF:
    """Frobenius NMF of a matrix read in column blocks (out of core).

    Parameters
    ----------
    rank : int
        r, the number of components.
    solver : str
        ``"hals"`` (exact streaming, keeps H: r x n) or ``"online"`` (minibatch, keeps
        only W and r x r, m x r statistics).
    memory_budget : int, optional
        Bytes allowed for the per-block working memory on top of the factors; sets the
        block size. Exclusive with ``block_size``.
    block_size : int, optional
        Columns per block (default 8192 when no budget is given).
    device : str or torch.device
        Where the blocks are computed (``"cuda"`` streams them through pinned memory
        with copies overlapping compute).
    dtype : torch.dtype
    H_device : str or torch.device, optional
        Where H (r x n) is kept (default: ``device``); ``"cpu"`` keeps it in host memory
        when it does not fit on the GPU.
    seed : int, optional
        Seed of the random initialisation (the same W, H as ``NMF(init="random")``
        with this seed on the same device).
    pin_memory : bool
        Stage blocks in pinned memory on CUDA.
    **solver_options
        Options of the streaming solver (e.g. ``rho``, ``inner_sweeps``, ``l1_reg_H``).

    Attributes
    ----------
    W : Tensor (m, r), H : Tensor (r, n) or None, block_size_ : int, result_ : FitResult
    """

    def __init__(self, rank: int, *, solver: str = "hals", memory_budget: int | None = None,
                 block_size: int | None = None, device="cpu", dtype: torch.dtype = torch.float32,
                 H_device=None, seed: int | None = None, pin_memory: bool = True, **solver_options):
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        if memory_budget is not None and block_size is not None:
            raise ValueError(f"give memory_budget or block_size, not both (got {memory_budget!r} and {block_size!r})")
        if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
        self.rank = rank
        self.solver_cls = get_solver(solver, model="streaming")
        unknown = sorted(set(solver_options) - set(self.solver_cls.options))
        if unknown:
            raise TypeError(
                f"solver {solver!r} got unexpected option(s) {unknown}; its options are {sorted(self.solver_cls.options)}"
            )
        self.memory_budget = memory_budget
        self.block_size = block_size
        self.device = torch.device(device)
        self.dtype = dtype
        self.H_device = self.device if H_device is None else torch.device(H_device)
        self.seed = seed
        self.pin_memory = pin_memory
        self.solver_options = solver_options
        self.W: Tensor | None = None
        self.H: Tensor | None = None
        self.block_size_: int | None = None
        self.result_: FitResult | None = None

    def _choose_block_size(self, source: BlockSource) -> int:
        if self.block_size is not None:
            return self.block_size
        if self.memory_budget is None:
            return DEFAULT_BLOCK_SIZE
        itemsize = getattr(getattr(source._X, "dtype", None), "itemsize", None)
        return block_size_for_budget(self.memory_budget, source.m, self.rank, self.dtype,
                                     source_itemsize=itemsize, device_type=self.device.type)

    def _random_init(self, source: BlockSource, block_size: int, generator, keeps_H: bool):
        """``random_init`` of :mod:`torchnmf_l1.init` with the mean of X taken by one pass."""
        total = torch.zeros((), device=self.device, dtype=self.dtype)
        for _, _, X_j in iter_device_blocks(source, block_size, self.device, self.dtype, pin_memory=self.pin_memory):
            if bool(X_j.min() < 0):
                raise ValueError("X must be nonnegative, found a negative entry")
            total = total + X_j.sum()
            del X_j
        m, n = source.shape
        like = dict(device=self.device, dtype=self.dtype, generator=generator)
        scale = torch.sqrt(total / (m * n) / self.rank)
        W = torch.rand(m, self.rank, **like).mul_(scale)
        H = torch.rand(self.rank, n, **like).mul_(scale).to(self.H_device) if keeps_H else None
        return W, H

    def fit(self, X, *, shape=None, max_iter: int = 100, tol: float = 1e-4, check_every: int = 1,
            W=None, H=None, checkpoint=None, checkpoint_every: int = 10, resume: bool = False,
            callbacks=(), progress: bool = False, warn: bool = True, generator: torch.Generator | None = None
            ) -> FitResult:
        """Fit W (and H) to X read in column blocks; returns the :class:`FitResult`.

        Parameters
        ----------
        X : array, memory-mapped .npy, h5py dataset, callable or iterable of blocks
        shape : (m, n), optional
            Needed for a callable X.
        max_iter, tol, check_every, callbacks, progress, warn
            As in :func:`torchnmf_l1.fit.run_fit` (one iteration is one pass over X).
        W, H : array-like, optional
            Starting factors (default: random, seeded by ``seed``).
        checkpoint : str or os.PathLike, optional
            Checkpoint file, written atomically every ``checkpoint_every`` iterations.
        resume : bool
            Start from ``checkpoint`` when it exists (refused with ``ValueError`` if it
            belongs to another shape, rank or version); ``max_iter`` counts the
            iterations of the checkpointed run too.
        """
        source = as_block_source(X, shape)
        keeps_H = self.solver_cls.keeps_H
        if source.shape is None:
            if W is None or (keeps_H and H is None):
                raise ValueError("X is an iterable of blocks of unknown shape: pass shape=(m, n) or W (and H)")
        block_size = self._choose_block_size(source) if source.shape is not None else DEFAULT_BLOCK_SIZE
        if generator is None:
            generator = make_generator(self.seed, self.device)
        done = 0
        state = None
        if resume:
            if checkpoint is None:
                raise ValueError("resume=True needs checkpoint=PATH")
            if os.path.exists(checkpoint):
                state = load_checkpoint(checkpoint, shape=source.shape, rank=self.rank, solver_name=self.solver_cls.name)
        if state is not None:
            m, n = source.shape
            W0 = torch.zeros(m, self.rank, device=self.device, dtype=self.dtype)
            H0 = torch.zeros(self.rank, n, device=self.H_device, dtype=self.dtype) if keeps_H else None
        elif W is None:
            W0, H0 = self._random_init(source, block_size, generator, keeps_H)
            if H is not None:
                H0 = check_factor(H, "H", (self.rank, source.n), device=self.H_device, dtype=self.dtype).clone()
        else:
            m = source.m if source.m is not None else _rows(W)
            W0 = check_factor(W, "W", (m, self.rank), device=self.device, dtype=self.dtype).clone()
            H0 = None
            if keeps_H:
                if H is None:
                    raise ValueError("solver 'hals' keeps H: pass H with W, or neither")
                n = source.n if source.n is not None else _cols(H)
                H0 = check_factor(H, "H", (self.rank, n), device=self.H_device, dtype=self.dtype).clone()
        solver = self.solver_cls(source, W0, H0, block_size=block_size, device=self.device, dtype=self.dtype,
                                 pin_memory=self.pin_memory, **self.solver_options)
        if state is not None:
            done = restore_checkpoint(state, solver, generator)
        runner = solver
        if checkpoint is not None:
            runner = CheckpointedSolver(solver, checkpoint, every=checkpoint_every, shape=lambda: source.shape,
                                        rank=self.rank, start_iteration=done, generator=generator)
        result = run_fit(runner, max_iter=max(max_iter - done, 0), tol=tol, check_every=check_every,
                         callbacks=callbacks, progress=progress, warn=warn)
        result.extra.update(block_size=block_size, resumed_from=done)
        result.n_iter += done
        self.W, self.H = solver.W, solver.H
        self.block_size_ = block_size
        self.result_ = result
        return result


def _rows(F) -> int:
    return int(F.shape[0])


def _cols(F) -> int:
    return int(F.shape[1])
