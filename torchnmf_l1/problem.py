r"""The objective of an NMF problem: a loss name resolved once, penalties, and its value.

.. math::
    \min_{W \ge 0,\, H \ge 0}\; D(X \mid WH)
    + \lambda^{(1)}_W \|W\|_1 + \tfrac12 \lambda^{(2)}_W \|W\|_F^2
    + \lambda^{(1)}_H \|H\|_1 + \tfrac12 \lambda^{(2)}_H \|H\|_F^2

with :math:`D` one of the losses of :mod:`torchnmf_l1.kernels.losses`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from typing import Callable

from torch import Tensor

from . import kernels
from .data import Data

__all__ = ["Loss", "LOSS_ALIASES", "resolve_loss", "Penalties", "NMFProblem", "FactorState", "SeparableProblem", "DictionaryProblem", "SparseProblem", "CPProblem", "CPState", "StreamingProblem", "DistributedProblem", "NNLSProblem", "LOSS_NAMES"]


@dataclass(frozen=True)
class Loss:
    """A resolved loss: canonical ``name``, its ``beta`` (beta-divergences) and ``zero_weight`` (wl1)."""

    name: str
    beta: float | None = None
    zero_weight: float = 1.0

    def __call__(self, data: Data, W: Tensor, H: Tensor) -> Tensor:
        return _LOSS_FUNCTIONS[self.name](self, data, W, H)

    @property
    def needs_positive_data(self) -> bool:
        """Beta-divergences with beta <= 0 are infinite where X has zeros."""
        return self.beta is not None and self.beta <= 0


_LOSS_FUNCTIONS: dict[str, Callable[[Loss, Data, Tensor, Tensor], Tensor]] = {
    "frobenius": lambda loss, d, W, H: kernels.frobenius_loss(d.X, W, H, d.support),
    "kl": lambda loss, d, W, H: kernels.kl_divergence(d.X, W, H, d.support),
    "is": lambda loss, d, W, H: kernels.is_divergence(d.X, W, H, d.support),
    "beta": lambda loss, d, W, H: kernels.beta_divergence(d.X, W, H, loss.beta, d.support),
    "l1": lambda loss, d, W, H: kernels.l1_loss(d.X, W, H, d.support),
    "wl1": lambda loss, d, W, H: kernels.weighted_l1_loss(d.X, W, H, loss.zero_weight, d.support),
    "l21": lambda loss, d, W, H: kernels.l21_loss(d.X, W, H, d.support),
}
"""Loss name -> ``f(loss, data, W, H)``: the loss of each problem (0-dim, or (B,))."""

LOSS_NAMES = tuple(_LOSS_FUNCTIONS)
#: every name resolve_loss accepts (canonical names and their aliases)
LOSS_ALIASES = LOSS_NAMES + ("fro", "euclidean", "l2", "kullback-leibler", "itakura-saito")

_BETA_OF = {"frobenius": 2.0, "kl": 1.0, "is": 0.0}
_NAME_OF_BETA = {b: n for n, b in _BETA_OF.items()}


def _finite_number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value


def resolve_loss(loss: str = "frobenius", *, beta=None, zero_weight=None) -> Loss:
    """Resolve a loss name and its parameters to a canonical :class:`Loss`.

    ``"beta"`` with ``beta`` in {2, 1, 0} becomes ``"frobenius"``, ``"kl"``, ``"is"``;
    ``"wl1"`` with ``zero_weight=1`` is ``"l1"``.

    Raises
    ------
    ValueError
        Unknown name, ``beta`` given with a loss that has a fixed beta, a missing or
        non-finite beta, a negative or non-finite ``zero_weight``.
    """
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a string, one of {LOSS_NAMES}, got {loss!r}")
    name = loss.lower()
    if name in ("fro", "frobenius", "euclidean", "l2"):
        name = "frobenius"
    elif name in ("kullback-leibler", "kl"):
        name = "kl"
    elif name in ("itakura-saito", "is"):
        name = "is"
    if name not in _LOSS_FUNCTIONS:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSS_NAMES}")
    if name in ("l1", "wl1"):
        if beta is not None:
            raise ValueError(f"beta is only used by beta-divergence losses, got beta={beta!r} with loss {loss!r}")
        if zero_weight is None:
            zero_weight = 1.0
        lam = _finite_number(zero_weight, "zero_weight")
        if lam < 0:
            raise ValueError(f"zero_weight must be >= 0, got {lam!r}")
        return Loss("l1" if lam == 1.0 else "wl1", None, lam)
    if zero_weight is not None:
        raise ValueError(f"zero_weight is only used by the 'wl1' loss, got zero_weight={zero_weight!r} with loss {loss!r}")
    if name == "l21":
        if beta is not None:
            raise ValueError(f"beta is only used by beta-divergence losses, got beta={beta!r} with loss {loss!r}")
        return Loss("l21")
    if name == "beta":
        if beta is None:
            raise ValueError("loss 'beta' needs beta=, e.g. beta=1.5")
        b = _finite_number(beta, "beta")
        return Loss(_NAME_OF_BETA.get(b, "beta"), b)
    if beta is not None and _finite_number(beta, "beta") != _BETA_OF[name]:
        raise ValueError(f"loss {loss!r} has beta={_BETA_OF[name]:g}, got beta={beta!r}; use loss='beta'")
    return Loss(name, _BETA_OF[name])


@dataclass(frozen=True)
class Penalties:
    """Element-wise L1 and squared-L2 penalties on W and H (all >= 0)."""

    l1_W: float = 0.0
    l2_W: float = 0.0
    l1_H: float = 0.0
    l2_H: float = 0.0

    def __post_init__(self):
        for field in ("l1_W", "l2_W", "l1_H", "l2_H"):
            value = _finite_number(getattr(self, field), f"{field.replace('_', '_reg_', 1)}")
            if value < 0:
                raise ValueError(f"{field.replace('_', '_reg_', 1)} must be >= 0, got {value!r}")
            object.__setattr__(self, field, value)

    @property
    def active(self) -> bool:
        return any((self.l1_W, self.l2_W, self.l1_H, self.l2_H))

    def value(self, W: Tensor, H: Tensor) -> Tensor:
        """The penalty at (W, H): 0-dim, or (B,) per problem of a batch."""
        return self.value_W(W) + self.value_H(H)

    @staticmethod
    def _value(F: Tensor, l1: float, l2: float) -> Tensor:
        dims = (-2, -1)
        total = F.new_zeros(F.shape[:-2])
        if l1:
            total = total + l1 * F.sum(dim=dims)
        if l2:
            total = total + 0.5 * l2 * F.square().sum(dim=dims)
        return total

    def value_W(self, W: Tensor) -> Tensor:
        """The penalty terms of W alone."""
        return self._value(W, self.l1_W, self.l2_W)

    def value_H(self, H: Tensor) -> Tensor:
        """The penalty terms of H alone."""
        return self._value(H, self.l1_H, self.l2_H)

    @property
    def transposed(self) -> "Penalties":
        """The penalties of the transposed problem X^T ~ H^T W^T."""
        return Penalties(self.l1_H, self.l2_H, self.l1_W, self.l2_W)


@dataclass(frozen=True, eq=False)
class NMFProblem:
    r"""Data, loss and penalties: everything an NMF solver needs besides the factors.

    Attributes
    ----------
    data : Data
    loss : Loss
    penalties : Penalties
    batch : int or None
        The number of problems solved together: ``data.batch`` for a batch of matrices,
        or a number of factor pairs fitted to one shared X (replicates). None: one problem.
    update_W, update_H : bool
        False keeps that factor fixed (``fix_W`` / ``fix_H``).
    weights : Data or None
        Entry weights (0 = missing) in the layout of ``data``
        (:func:`torchnmf_l1.missing.prepare_weighted`): dense (m, n), or the weights of the
        observed entries when ``data`` holds those only (its stored zeros are observed zeros).
        The loss is then :math:`\sum_{ij} w_{ij} d(X_{ij} \mid (WH)_{ij})`; beta-divergence losses and L1.
    """

    data: Data
    loss: Loss
    penalties: Penalties = Penalties()
    batch: int | None = None
    update_W: bool = True
    update_H: bool = True
    weights: Data | None = None

    def __post_init__(self):
        if self.batch is None and self.data.batch is not None:
            object.__setattr__(self, "batch", self.data.batch)
        if self.data.batch is not None and self.batch != self.data.batch:
            raise ValueError(f"a batch of {self.data.batch} matrices needs batch={self.data.batch}, got {self.batch}")
        if not (self.update_W or self.update_H):
            raise ValueError("fix_W and fix_H cannot both be True: there would be nothing to fit")
        if self.weights is not None:
            if self.loss.beta is None and self.loss.name != "l1":
                raise ValueError(
                    f"mask= and weights= (missing entries) work with the beta-divergence losses "
                    f"(frobenius, kl, is, beta) and 'l1', got loss {self.loss.name!r}"
                    + (" (give the weight of the zeros through weights=)" if self.loss.name == "wl1" else "")
                )
            if self.data.batch is not None:
                raise ValueError("mask= and weights= need one matrix X, not a batch")

    @property
    def weight_values(self) -> Tensor | None:
        """The weights as the kernels take them: dense (m, n), or per observed entry (CSR order)."""
        if self.weights is None:
            return None
        return self.weights.values if self.weights.sparse else self.weights.X

    @property
    def shape(self) -> tuple[int, int]:
        """(m, n) of each problem."""
        return self.data.shape

    @property
    def shared(self) -> bool:
        """True when several factor pairs are fitted to one X (replicates)."""
        return self.batch is not None and self.data.batch is None

    def factor_shapes(self, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of W and H: (m, r), (r, n), with a leading B for a batch."""
        m, n = self.shape
        lead = () if self.batch is None else (self.batch,)
        return lead + (m, rank), lead + (rank, n)

    def objective(self, W: Tensor, H: Tensor) -> Tensor:
        """Loss plus penalties at (W, H): 0-dim, or (B,) for a batch (no host sync)."""
        if self.weights is not None:
            value = kernels.weighted_loss(self.data.X, W, H, self.weight_values, self.loss.beta, self.data.support)
        else:
            value = self.loss(self.data, W, H)
        if self.penalties.active:
            value = value + self.penalties.value(W, H)
        return value


@dataclass(eq=False)
class FactorState:
    """The factors an NMF solver updates in place: W ((m, r) or (B, m, r)) and H ((r, n) or (B, r, n)).

    A solver may replace a tensor by another layout of the same values (e.g. W as the
    transpose of a contiguous W^T, so that its columns are rows in memory); the state
    always holds the current factors.
    """

    W: Tensor
    H: Tensor


@dataclass(frozen=True, eq=False)
class SeparableProblem:
    r"""Near-separable NMF :math:`X \approx X(:, K) H`, :math:`|K| = r`, :math:`H \ge 0`.

    Attributes
    ----------
    X : Tensor, shape (m, n)
        Dense nonnegative data (columns are the points).
    rank : int or None
        r; None for a solver that detects it (FGNSR with a given mu).
    generator : torch.Generator, optional
        Randomness (VCA's directions, FGNSR's tie-breaking weights).
    subsample : int, optional
        Select among the representatives of this many H2NMF clusters (the "-k" variants).
    nnls_max_sweeps, nnls_delta :
        The final H-fit on all columns (:func:`torchnmf_l1.kernels.nnls_columns`).
    subsample_scaling : {"authors", "sqrt-size", "none"}
        Weighting of the representatives (see :class:`torchnmf_l1.SeparableNMF`).
    """

    X: Tensor
    rank: int | None
    generator: torch.Generator | None = None
    subsample: int | None = None
    nnls_max_sweeps: int = 500
    nnls_delta: float = 1e-6
    subsample_scaling: str = "authors"


@dataclass(frozen=True, eq=False)
class DictionaryProblem:
    r"""Dictionary NMF :math:`X \approx D(:, K)\, H`, K r atoms of a known dictionary D.

    Attributes
    ----------
    X : Tensor, shape (p, n)
        Dense nonnegative data.
    dictionary : Tensor, shape (p, d)
        The atoms (columns), possibly several dictionaries side by side (``groups``).
    rank : int
    distinct, groups, counts :
        Constraints on K (see :func:`torchnmf_l1.kernels.match_atoms`).
    init : str
        ``"random"`` or the name of a registered separable solver whose selection on X
        gives the first atoms (d-SPA, d-SNPA, ...).
    init_problem : SeparableProblem or None
        The separable problem of that init (its subsampling, NNLS settings, generator).
    init_options : dict
        The separable solver's options.
    generator : torch.Generator
        Randomness of ``init="random"``.
    nnls_max_sweeps : int
        HALS sweeps of the H-fits with D(:, K).
    """

    X: Tensor
    dictionary: Tensor
    rank: int
    distinct: bool = True
    groups: tuple | None = None
    counts: tuple | None = None
    init: str = "random"
    init_problem: SeparableProblem | None = None
    init_options: dict | None = None
    generator: torch.Generator | None = None
    nnls_max_sweeps: int = 500


@dataclass(frozen=True, eq=False)
class SparseProblem:
    r"""Low-rank sparse component analysis: :math:`\min \tfrac12 \|X - WH\|_F^2` with at most k
    nonzeros in every column of H (and :math:`W, H \ge 0` when ``nonnegative``).

    Attributes
    ----------
    X : Tensor, shape (m, n)
        Dense, finite (nonnegative when ``nonnegative``); shared by a batch of starts.
    k : int
        Nonzeros allowed per column of H, 1 <= k <= r.
    nonnegative : bool
    coding : {"exact", "greedy"}
        How the codes are computed (:func:`torchnmf_l1.kernels.ksparse_codes`).
    batch : int or None
        The number of starts fitted together (W of shape (B, m, r)); None: one.
    """

    X: Tensor
    k: int
    nonnegative: bool = True
    coding: str = "exact"
    batch: int | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.X.shape)


@dataclass(frozen=True, eq=False)
class CPProblem:
    r"""Nonnegative CPD :math:`\min \tfrac12 \|M \ast (T - [\![A_1, \dots, A_N]\!])\|_F^2`, optionally
    with the columns of one factor among the atoms of a dictionary.

    Attributes
    ----------
    T : Tensor
        Order N >= 2, dense, finite, nonnegative (missing entries may hold anything
        finite); (B, I_1, ..., I_N) for a batch of B tensors.
    mask : bool Tensor like T, optional
        True where T is observed.
    weights : Tensor like T, optional
        Entry weights (>= 0, 0 where missing): the loss becomes
        :math:`\tfrac12 \sum w (T - [\![\cdot]\!])^2`.
    batch : int or None
    dictionary : Tensor (I_c x d), optional
        Atoms of mode ``dict_mode``.
    dict_mode, distinct, snap, atoms_init :
        See :class:`torchnmf_l1.DictionaryCP`.
    groups, counts :
        Several dictionaries side by side in ``dictionary`` (their sizes) and the atoms to
        take from each (an int or an inclusive (lo, hi) each), as for dictionary NMF.
    """

    T: Tensor
    mask: Tensor | None = None
    batch: int | None = None
    dictionary: Tensor | None = None
    dict_mode: int = 0
    distinct: bool = True
    snap: str = "hard"
    atoms_init: str = "match"
    weights: Tensor | None = None
    groups: tuple | None = None
    counts: tuple | None = None

    @property
    def order(self) -> int:
        return self.T.dim() - (0 if self.batch is None else 1)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.T.shape[0 if self.batch is None else 1 :])


@dataclass(eq=False)
class CPState:
    """The CP factors a solver updates in place: N tensors (I_n, r), or (B, I_n, r)."""

    factors: list


@dataclass(frozen=True, eq=False)
class StreamingProblem:
    r"""Frobenius NMF of X (m x n) read in column blocks, :math:`\tfrac12\|X - WH\|_F^2` + penalties.

    Attributes
    ----------
    source : torchnmf_l1.blocks.BlockSource
        Where the blocks come from.
    block_size : int
        Columns per block (the source's own blocks for an iterable).
    device, dtype :
        Where and in which precision the blocks are computed.
    penalties : Penalties
    pin_memory : bool
        Stage blocks in pinned host memory on CUDA (copies overlapped with compute).
    resume : dict, optional
        A solver state from a checkpoint (:mod:`torchnmf_l1.checkpoint`) to continue from.
    weights, mask : BlockSource, optional
        Entry weights (>= 0) and a mask (True = observed) of X's shape, read in the same
        blocks; with either, NaN entries of X are missing too and the loss is
        :math:`\tfrac12 \sum w (X - WH)^2` over the observed entries.
    """

    source: object
    block_size: int
    device: torch.device
    dtype: torch.dtype
    penalties: Penalties = Penalties()
    pin_memory: bool = True
    resume: dict | None = None
    weights: object = None
    mask: object = None

    @property
    def weighted(self) -> bool:
        """A fit with entry weights or missing entries."""
        return self.weights is not None or self.mask is not None


@dataclass(frozen=True, eq=False)
class DistributedProblem:
    """One rank's share of a data-parallel NMF: its columns X_p, the loss, the penalties, the group.

    Attributes
    ----------
    data : Data
        X_p (m x n_p), dense or (for the L1 losses) sparse.
    loss : Loss
    penalties : Penalties
    group : ProcessGroup, optional
        Default: the world.
    weights : Data, optional
        Dense entry weights of X_p (0 = missing), for the weighted Frobenius fit.
    """

    data: Data
    loss: Loss
    penalties: Penalties = Penalties()
    group: object = None
    weights: Data | None = None


@dataclass(frozen=True, eq=False)
class NNLSProblem:
    r"""Codes of a batch of vectors in a fixed dictionary:
    :math:`\min_{h_b \ge 0} D(x_b \mid W h_b) + \lambda \mathbf{1}^T h_b` for every row b.

    Attributes
    ----------
    x : Tensor, shape (B, m)
    W : Tensor, shape (m, r)
    loss : {"frobenius", "kl"}
    l1 : float
        lambda >= 0.
    """

    x: Tensor
    W: Tensor
    loss: str = "frobenius"
    l1: float = 0.0
