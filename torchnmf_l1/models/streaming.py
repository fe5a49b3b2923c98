r"""Out-of-core NMF: :class:`StreamingNMF` fits X (m x n) read as column blocks.

.. math:: \min_{W, H \ge 0} \tfrac12 \|X - WH\|_F^2 + \text{penalties}

X can be a memory-mapped ``.npy``, an HDF5 dataset, a callable or an iterable of column
blocks (:mod:`torchnmf_l1.blocks`). The block size is given, or chosen from a memory
budget in bytes (:func:`torchnmf_l1.blocks.block_size_for_budget`). The solvers are
registered in family ``"streaming"``: ``"hals"`` (exact block-streaming HALS, the same
iterates as in-memory HALS) and ``"online"`` (minibatch HALS with a forgetting factor);
see :mod:`torchnmf_l1.solvers.streaming`. Long fits can write atomic checkpoints and
resume from them (:mod:`torchnmf_l1.checkpoint`).

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
from torch import Tensor, nn

from ..blocks import BlockSource, as_block_source, block_size_for_budget
from ..checkpoint import CheckpointedSolver, load_checkpoint, restore_rng
from ..data import check_factor
from ..exceptions import NotFittedError
from ..fit import FitOptions, FitResult
from ..init import make_generator, random_init_blocks
from ..params import Anything, Boolean, Integer, Number, OneOf, Param, Registered, check_params
from ..problem import FactorState, Penalties, StreamingProblem
from ..registry import get_solver
from .base import FactorModule, check_device, set_factor_

__all__ = ["StreamingNMF"]

DEFAULT_BLOCK_SIZE = 8192

STREAMING_PARAMETERS = {
    "rank": Param(None, Integer(1), "number r of components", required=True),
    "solver": Param("hals", Registered("streaming"), "registered streaming solver"),
    "memory_budget": Param(None, OneOf(None, Integer(1)), "bytes for the per-block working memory"),
    "block_size": Param(None, OneOf(None, Integer(1)), "columns per block"),
    "H_device": Param(None, Anything("a torch device or None"), "where H is kept"),
    "seed": Param(None, OneOf(None, Integer(0)), "seed of the random initialisation"),
    "pin_memory": Param(True, Boolean(), "stage blocks in pinned memory on CUDA"),
    "l1_reg_W": Param(0.0, Number(0), "L1 penalty on W"),
    "l2_reg_W": Param(0.0, Number(0), "squared-L2 penalty on W"),
    "l1_reg_H": Param(0.0, Number(0), "L1 penalty on H"),
    "l2_reg_H": Param(0.0, Number(0), "squared-L2 penalty on H"),
}


class StreamingNMF(FactorModule):
    """Frobenius NMF of a matrix read in column blocks (out of core), as a ``torch.nn.Module``.

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
    l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H : float
        Penalty weights (>= 0), as in :class:`~torchnmf_l1.NMF`.
    **solver_options
        Options of the streaming solver (e.g. ``rho``, ``inner_sweeps``), checked now.

    Attributes
    ----------
    W : Parameter (m, r)
    H : Parameter (r, n) (empty for ``"online"``)
    block_size_ : int
    result_ : FitResult
    """

    hyperparameters = STREAMING_PARAMETERS
    rank_axes = {"W": -1, "H": -2}
    solver_family = "streaming"
    #: the options of :meth:`fit` besides the fit loop's (the command line's [fit] keys)
    fit_hyperparameters = {
        "checkpoint": Param(None, OneOf(None, Anything("a file path")), "checkpoint file, written atomically"),
        "checkpoint_every": Param(10, Integer(1), "iterations between checkpoints"),
        "resume": Param(False, Boolean(), "start from the checkpoint when it exists"),
    }

    def __init__(self, rank: int, *, solver: str = "hals", memory_budget: int | None = None,
                 block_size: int | None = None, device="cpu", dtype: torch.dtype = torch.float32,
                 H_device=None, seed: int | None = None, pin_memory: bool = True,
                 l1_reg_W: float = 0.0, l2_reg_W: float = 0.0, l1_reg_H: float = 0.0, l2_reg_H: float = 0.0,
                 **solver_options):
        super().__init__()
        check_params(self.hyperparameters, dict(
            rank=rank, solver=solver, memory_budget=memory_budget, block_size=block_size, H_device=H_device, seed=seed,
            pin_memory=pin_memory, l1_reg_W=l1_reg_W, l2_reg_W=l2_reg_W, l1_reg_H=l1_reg_H, l2_reg_H=l2_reg_H,
        ), "StreamingNMF")
        check_device(device)
        check_device(H_device)
        if memory_budget is not None and block_size is not None:
            raise ValueError(f"give memory_budget or block_size, not both (got {memory_budget!r} and {block_size!r})")
        if dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise TypeError(f"dtype must be a floating torch dtype, got {dtype!r}")
        self.solver = solver.lower()
        self.solver_cls = get_solver(self.solver, family="streaming")
        self.solver_cls.check_options(solver_options)
        self.penalties = Penalties(l1_reg_W, l2_reg_W, l1_reg_H, l2_reg_H)
        self.rank = rank
        self.memory_budget = memory_budget
        self.block_size = block_size
        self.device = torch.device(device)
        self.dtype = dtype
        self.H_device = self.device if H_device is None else torch.device(H_device)
        self.seed = seed
        self.pin_memory = pin_memory
        self.solver_options = dict(solver_options)
        self.W = nn.Parameter(torch.empty(0, rank, device=self.device, dtype=dtype), requires_grad=False)
        self.H = nn.Parameter(torch.empty(rank, 0, device=self.H_device, dtype=dtype), requires_grad=False)
        self.block_size_: int | None = None
        self.result_: FitResult | None = None

    def extra_repr(self) -> str:
        return f"rank={self.rank}, solver={self.solver!r}, shape=({self.W.shape[0]}, {self.H.shape[1]}), device={self.device}"

    @property
    def fitted(self) -> bool:
        return self.W.shape[0] > 0

    def forward(self) -> Tensor:
        """W H (for ``"hals"``, which keeps H)."""
        if not self.fitted or self.H.shape[1] == 0:
            raise NotFittedError("StreamingNMF has no W and H yet: call fit(X) (solver 'online' keeps no H)")
        return self.W @ self.H.to(self.W.device)

    def _choose_block_size(self, source: BlockSource) -> int:
        if self.block_size is not None:
            return self.block_size
        if self.memory_budget is None:
            return DEFAULT_BLOCK_SIZE
        itemsize = getattr(getattr(source._X, "dtype", None), "itemsize", None)
        return block_size_for_budget(self.memory_budget, source.m, self.rank, self.dtype,
                                     source_itemsize=itemsize, device_type=self.device.type)

    def fit(self, X, *, shape=None, mask=None, weights=None, W=None, H=None, checkpoint=None, checkpoint_every: int = 10,
            resume: bool = False, generator: torch.Generator | None = None, **fit_options) -> FitResult:
        r"""Fit W (and H) to X read in column blocks; returns the :class:`FitResult`.

        Parameters
        ----------
        X : array, memory-mapped .npy, h5py dataset, callable or iterable of blocks
        shape : (m, n), optional
            Needed for a callable X.
        mask, weights : same kinds as X, optional
            A mask (True = observed) and entry weights (>= 0) of X's shape, read in the same
            blocks (solver ``"hals"``): the loss becomes :math:`\tfrac12 \sum w (X - WH)^2`
            over the observed entries, and NaN entries of X are missing too. Without them a
            NaN in X is an error.
        W, H : array-like, optional
            Starting factors (default: random, seeded by ``seed``).
        checkpoint : str or os.PathLike, optional
            Checkpoint file, written atomically every ``checkpoint_every`` iterations.
        resume : bool
            Start from ``checkpoint`` when it exists (refused with ``ValueError`` if it
            belongs to another shape, rank or version); ``max_iter`` counts the
            iterations of the checkpointed run too.
        **fit_options
            See :class:`torchnmf_l1.fit.FitOptions` (one iteration is one pass over X;
            defaults: 100 iterations, tol 1e-4, a check every iteration).
        """
        check_params(self.fit_hyperparameters, dict(checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume),
                     "StreamingNMF.fit")
        FitOptions.from_kwargs(fit_options, owner="StreamingNMF.fit")  # before max_iter is counted on
        weighted = mask is not None or weights is not None
        source = as_block_source(X, shape, allow_nan=weighted)
        extra = {}
        for key, value in (("weights", weights), ("mask", mask)):
            if value is not None:
                extra[key] = as_block_source(value, source.shape if callable(value) else None, name=key,
                                             allow_bool=key == "mask")
                if source.shape is not None and extra[key].shape is not None and extra[key].shape != source.shape:
                    raise ValueError(f"{key} must have X's shape {source.shape}, got {extra[key].shape}")
        keeps_H = self.solver_cls.keeps_H
        if source.shape is None and (W is None or (keeps_H and H is None)):
            raise ValueError("X is an iterable of blocks of unknown shape: pass shape=(m, n) or W (and H)")
        block_size = self._choose_block_size(source) if source.shape is not None else DEFAULT_BLOCK_SIZE
        if generator is None:
            generator = make_generator(self.seed, self.device)
        like = dict(device=self.device, dtype=self.dtype)
        state, done = None, 0
        if resume:
            if checkpoint is None:
                raise ValueError("resume=True needs checkpoint=PATH")
            if os.path.exists(checkpoint):
                state = load_checkpoint(checkpoint, shape=source.shape, rank=self.rank, solver_name=self.solver)
        if state is not None:
            m, n = source.shape
            W0 = torch.zeros(m, self.rank, **like)
            H0 = torch.zeros(self.rank, n, device=self.H_device, dtype=self.dtype) if keeps_H else None
            done = restore_rng(state, generator)
        elif W is None:
            W0, H0 = random_init_blocks(source, self.rank, block_size, generator=generator, H_device=self.H_device,
                                        keeps_H=keeps_H, pin_memory=self.pin_memory, **like)
            if H is not None:
                H0 = check_factor(H, "H", (self.rank, source.n), device=self.H_device, dtype=self.dtype)
        else:
            m = source.m if source.m is not None else int(W.shape[0])
            W0 = check_factor(W, "W", (m, self.rank), **like)
            H0 = None
            if keeps_H:
                if H is None:
                    raise ValueError("solver 'hals' keeps H: pass H with W, or neither")
                n = source.n if source.n is not None else int(H.shape[1])
                H0 = check_factor(H, "H", (self.rank, n), device=self.H_device, dtype=self.dtype)
        problem = StreamingProblem(source, block_size, self.device, self.dtype, self.penalties, self.pin_memory,
                                   None if state is None else state["solver_state"], **extra)
        wrap = None
        if checkpoint is not None:
            def wrap(solver):
                return CheckpointedSolver(solver, checkpoint, every=checkpoint_every, shape=lambda: source.shape,
                                          rank=self.rank, start_iteration=done, generator=generator)
        fit_options = dict(fit_options)
        if fit_options.get("max_iter") is not None or done:
            max_iter = fit_options.get("max_iter")
            max_iter = self.solver_cls.fit_defaults.max_iter if max_iter is None else max_iter
            fit_options["max_iter"] = max(max_iter - done, 0)
        result, output = self._run_solver("streaming", self.solver, problem, FactorState(W0, H0), self.solver_options,
                                          fit_options, wrap=wrap)
        result.extra.update(block_size=block_size, resumed_from=done)
        result.n_iter += done
        set_factor_(self, "W", output.factors["W"])
        if output.factors["H"] is not None:
            set_factor_(self, "H", output.factors["H"])
        self.block_size_ = block_size
        self.result_ = result
        return result
