r"""Out-of-core Frobenius NMF: exact block-streaming HALS and online (minibatch) HALS.

.. math:: \min_{W, H \ge 0} \tfrac12 \|X - WH\|_F^2
          + \lambda_1^W \|W\|_1 + \tfrac{\lambda_2^W}{2}\|W\|_F^2
          + \lambda_1^H \|H\|_1 + \tfrac{\lambda_2^H}{2}\|H\|_F^2

with X (m x n) read as column blocks X_j (:mod:`torchnmf_l1.blocks`).

**Streaming HALS** (``"hals"``, exact). The W update of HALS needs only the sufficient
statistics X H^T (m x r) and H H^T (r x r), sums over the columns; the H update is
column-separable, so H_j depends only on X_j and W. One outer iteration is

1. W update: HALS sweeps on W^T from A = (X H^T)^T, B = H H^T (statistics of the current H);
2. one pass over the blocks: H_j <- HALS(W^T X_j, W^T W) in place, then accumulate
   X_j H_j^T and H_j H_j^T into the statistics of the new H.

This is the update order of the in-memory ``NMF(solver="hals")`` (W then H), so with
``alpha=0`` and ``scale_init=False`` there (one sweep per factor) the two produce the same
iterates from the same start, up to the summation order of the block sums. The statistics
of the starting H cost one extra pass, made when the solver is built (where X is also
checked to be nonnegative), so a step never reads the device. One difference: the
in-memory solver revives a row of H that is zero over *all* n columns
(``keep_rows_positive``), which a block cannot see; streaming HALS does not revive rows
of H (it does for W, as in-memory).

The objective is evaluated from the statistics without another pass,
:math:`\tfrac12\|X\|^2 - \langle W, XH^T\rangle + \tfrac12\langle W^TW, HH^T\rangle`
(in float32 this difference loses relative accuracy once the fit is very good).

With entry weights or missing entries (``problem.weights`` / ``problem.mask``, NaN in X),
the loss :math:`\tfrac12 \sum w_{ij} (X - WH)_{ij}^2`: each row i of W has its own
quadratic, with statistics :math:`G_i = \sum_j w_{ij} h_j h_j^T` and
:math:`b_i = \sum_j w_{ij} X_{ij} h_j` summed over the blocks
(:func:`torchnmf_l1.kernels.weighted_row_statistics`, O(m n r^2) per pass, m r^2 memory); the W
update is a coordinate sweep on them (:func:`torchnmf_l1.kernels.row_gram_nnls_sweep_`) and
each block's H a weighted HALS sweep: the iterates of in-memory weighted HALS
(``NMF(solver="hals", scale_init=False).fit(X, weights=...)``).

**Online HALS** (``"online"``), after Mairal et al. (2010) with HALS as the inner solver.
H is not kept. For each minibatch X_t: H_t <- HALS(W^T X_t, W^T W) from zero
(``inner_sweeps`` sweeps), then

.. math:: A \leftarrow \rho A + H_t H_t^T, \quad B \leftarrow \rho B + X_t H_t^T,
          \quad W \leftarrow \mathrm{HALS}(B^T, A) \text{ on } W^T,

with the **forgetting factor** :math:`\rho \in (0, 1]`: the statistics are sums over past
minibatches, minibatch t-s weighted by :math:`\rho^s`; ``rho=1`` weighs every minibatch
seen equally (Mairal et al.'s algorithm 2 with their :math:`\beta = 0`), ``rho < 1``
forgets old minibatches (tracks drifting data; an effective memory of
:math:`1/(1-\rho)` minibatches). One ``step()`` is one pass over the data. Its
``objective()`` is the surrogate :math:`(\tfrac12 c - \langle W, B\rangle + \tfrac12
\langle W^TW, A\rangle) / w` with c the equally forgotten sum of :math:`\|X_t\|^2` and
:math:`w = \sum_s \rho^s` the sum of the weights: an upper bound of the weighted mean
loss per minibatch of the past minibatches with the current W (``inf`` before the first
minibatch).

References
----------
N. Gillis and F. Glineur, "Accelerated multiplicative updates and hierarchical ALS
algorithms for nonnegative matrix factorization", Neural Computation 24(4), 2012.
J. Mairal, F. Bach, J. Ponce and G. Sapiro, "Online learning for matrix factorization
and sparse coding", JMLR 11, 2010.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from ..blocks import iter_device_blocks
from ..missing import warn_empty
from ..fit import FitDefaults
from ..params import Integer, Number, Param
from ..problem import FactorState, StreamingProblem
from ..registry import register_solver
from .base import Solver, SolverOutput

__all__ = ["StreamingHALS", "OnlineHALS"]


class _StreamingBase(Solver):
    """Shared plumbing of the streaming solvers (family ``"streaming"``; not itself registered)."""

    family = "streaming"
    keeps_H = True
    fit_defaults = FitDefaults(max_iter=100, tol=1e-4, check_every=1)

    def __init__(self, problem: StreamingProblem, state: FactorState, **options):
        super().__init__(problem, state, **options)
        self.source = problem.source
        self.W = state.W
        self.H = state.H
        self.block_size = int(problem.block_size)
        self.device = torch.device(problem.device)
        self.dtype = problem.dtype
        self.pin_memory = problem.pin_memory
        self.penalties = problem.penalties

    def _device(self) -> torch.device:
        return self.device

    def _blocks(self):
        return iter_device_blocks(self.source, self.block_size, self.device, self.dtype, pin_memory=self.pin_memory)

    def _update_W_(self, XHt: Tensor, HHt: Tensor, sweeps: int, delta: float) -> None:
        Wt = self.W.mT.contiguous()
        pen = self.penalties
        kernels.hals_nnls_(Wt, XHt.mT, HHt, max_sweeps=sweeps, delta=delta, l1=pen.l1_W, l2=pen.l2_W,
                           keep_rows_positive=True)
        self.W.copy_(Wt.mT)

    def _penalty(self, H_l1: Tensor | None = None, H_sq: Tensor | None = None) -> Tensor:
        pen = self.penalties
        value = pen.l1_W * self.W.sum() + 0.5 * pen.l2_W * torch.sum(self.W * self.W)
        if H_l1 is not None:
            value = value + pen.l1_H * H_l1 + 0.5 * pen.l2_H * H_sq
        return value

    def finish(self) -> SolverOutput:
        return SolverOutput({"W": self.W, "H": self.H})

    def state_dict(self) -> dict:
        return {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in self._state().items()}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            current = getattr(self, key)
            if isinstance(current, Tensor):
                current.copy_(value)
            else:
                setattr(self, key, value.to(self.device) if isinstance(value, Tensor) else value)


@register_solver("hals", family="streaming")
class StreamingHALS(_StreamingBase):
    """Exact block-streaming HALS (module docstring).

    The H sweeps of a block always run ``sweeps_H`` times, so that the result does not
    depend on the block size.
    """

    keeps_H = True
    monotone = True
    options = {
        "sweeps_W": Param(1, Integer(1), "HALS sweeps on W per iteration (1 matches in-memory HALS with alpha=0)"),
        "sweeps_H": Param(1, Integer(1), "HALS sweeps on each block of H per iteration"),
        "delta": Param(0.1, Number(0), "relative change under which the W sweeps stop early (as in-memory HALS)"),
    }

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        if self.H is None:
            raise ValueError("streaming HALS keeps H (r x n); pass H")
        r = self.W.shape[1]
        like = dict(device=self.device, dtype=self.dtype)
        self.weighted = problem.weighted
        self.XHt = torch.zeros(self.W.shape[0], r, **like)
        # weighted: XHt holds b (m, r) and HHt the per-row Grams G (m, r, r)
        self.HHt = torch.zeros((self.W.shape[0], r, r) if self.weighted else (r, r), **like)
        self.norm_x_sq = torch.zeros((), **like)
        self.H_l1 = torch.zeros((), **like)
        self.H_sq = torch.zeros((), **like)
        self.have_stats = False
        if problem.resume is not None:
            self.load_state_dict(problem.resume)
        else:  # the statistics of the starting H: one pass over X, checking X >= 0 block by block
            self._pass_(update_H=False)

    def _state(self) -> dict:
        return {"W": self.W, "H": self.H, "XHt": self.XHt, "HHt": self.HHt, "norm_x_sq": self.norm_x_sq,
                "H_l1": self.H_l1, "H_sq": self.H_sq, "have_stats": self.have_stats}

    def _weighted_blocks(self):
        """(start, stop, X_j, w_j): X_j with its missing entries 0, w_j its weights (0 = missing)."""
        p = self.problem
        sources = [self._blocks()] + [
            iter_device_blocks(extra, self.block_size, self.device, self.dtype, pin_memory=self.pin_memory)
            for extra in (p.weights, p.mask) if extra is not None
        ]
        for items in zip(*sources):
            start, stop, X_j = items[0]
            w_j = None
            for other_start, other_stop, block in items[1:]:
                if (other_start, other_stop) != (start, stop):
                    raise ValueError(f"the weight or mask blocks [{other_start}:{other_stop}] do not match X's [{start}:{stop}]")
                w_j = block if w_j is None else w_j * block
            missing = torch.isnan(X_j)
            yield start, stop, torch.where(missing, 0.0, X_j), torch.where(missing, 0.0, w_j)
            del X_j, w_j, missing

    def _weighted_pass_(self, update_H: bool) -> None:
        """The weighted :meth:`_pass_`: H_j by weighted HALS, the per-row statistics G, b."""
        c, pen = self.config, self.penalties
        b, G = torch.zeros_like(self.XHt), torch.zeros_like(self.HHt)
        H_l1, H_sq = torch.zeros_like(self.H_l1), torch.zeros_like(self.H_sq)
        first = not self.have_stats
        norm = torch.zeros_like(self.norm_x_sq) if first else None
        Wt = self.W.mT.contiguous()
        observed_rows = torch.zeros(self.W.shape[0], device=self.device, dtype=self.dtype) if first else None
        empty_columns = torch.zeros((), device=self.device, dtype=torch.int64) if first else None
        for start, stop, X_j, w_j in self._weighted_blocks():
            H_view = self.H[:, start:stop]
            H_j = H_view.to(self.device, copy=H_view.device != self.device)
            if update_H:
                residual = kernels.weighted_residual(X_j, self.W, H_j, w_j)
                for _ in range(c["sweeps_H"]):
                    kernels.weighted_hals_update_(H_j, Wt, residual, w_j, l1=pen.l1_H, l2=pen.l2_H)
                if H_j is not H_view:
                    H_view.copy_(H_j, non_blocking=True)
            G_j, b_j = kernels.weighted_row_statistics(X_j, w_j, H_j)
            G.add_(G_j), b.add_(b_j)
            H_l1.add_(H_j.sum())
            H_sq.add_(torch.sum(H_j * H_j))
            if norm is not None:
                norm.add_((w_j * X_j.square()).sum())
                observed_rows.add_((w_j > 0).sum(dim=1))
                empty_columns.add_(((w_j > 0).sum(dim=0) == 0).sum())
            del X_j, w_j, H_j, H_view
        if observed_rows is not None:  # the first pass: where nothing is observed, once, on the host
            if not bool((observed_rows > 0).any()):
                raise ValueError("no entry of X is observed (mask, weights and NaN entries leave none)")
            warn_empty(observed_rows, int(empty_columns))
        self.XHt, self.HHt, self.H_l1, self.H_sq = b, G, H_l1, H_sq
        if norm is not None:
            self.norm_x_sq = norm
        self.have_stats = True

    def _pass_(self, update_H: bool) -> None:
        """One pass over the blocks; updates H_j when ``update_H``; recomputes the statistics."""
        if self.weighted:
            self._weighted_pass_(update_H)
            return
        c = self.config
        pen = self.penalties
        XHt = torch.zeros_like(self.XHt)
        HHt = torch.zeros_like(self.HHt)
        H_l1 = torch.zeros_like(self.H_l1)
        H_sq = torch.zeros_like(self.H_sq)
        first = not self.have_stats
        norm = torch.zeros_like(self.norm_x_sq) if first else None
        if update_H:
            WtW = kernels.gram(self.W)
        for start, stop, X_j in self._blocks():
            H_view = self.H[:, start:stop]
            H_j = H_view.to(self.device, copy=H_view.device != self.device)
            A = None
            if update_H:
                A = kernels.wt_x(self.W, X_j)
                kernels.hals_nnls_(H_j, A, WtW, max_sweeps=c["sweeps_H"], delta=0.0, l1=pen.l1_H, l2=pen.l2_H)
                if H_j is not H_view:
                    H_view.copy_(H_j, non_blocking=True)
            XHt.add_(X_j @ H_j.mT)
            HHt.add_(H_j @ H_j.mT)
            H_l1.add_(H_j.sum())
            H_sq.add_(torch.sum(H_j * H_j))
            if norm is not None:
                norm.add_(torch.linalg.vector_norm(X_j).square())  # no m x b temporary
            del X_j, H_j, H_view, A  # let the next block reuse the memory
        self.XHt, self.HHt, self.H_l1, self.H_sq = XHt, HHt, H_l1, H_sq
        if norm is not None:
            self.norm_x_sq = norm
        self.have_stats = True

    def step(self) -> None:
        if self.weighted:
            pen = self.penalties
            for _ in range(self.config["sweeps_W"]):
                kernels.row_gram_nnls_sweep_(self.W, self.HHt, self.XHt, l1=pen.l1_W, l2=pen.l2_W)
        else:
            self._update_W_(self.XHt, self.HHt, self.config["sweeps_W"], self.config["delta"])
        self._pass_(update_H=True)

    def objective(self) -> Tensor:
        W = self.W
        if self.weighted:
            quadratic = torch.einsum("ik,ikl,il->", W, self.HHt, W)
            return 0.5 * self.norm_x_sq - torch.sum(W * self.XHt) + 0.5 * quadratic + self._penalty(self.H_l1, self.H_sq)
        fit = 0.5 * self.norm_x_sq - torch.sum(W * self.XHt) + 0.5 * torch.sum(kernels.gram(W) * self.HHt)
        return fit + self._penalty(self.H_l1, self.H_sq)


@register_solver("online", family="streaming")
class OnlineHALS(_StreamingBase):
    """Online (minibatch) HALS with a forgetting factor (module docstring)."""

    keeps_H = False
    options = {
        "rho": Param(1.0, Number(0, 1, closed="right"), "forgetting factor of the statistics per minibatch"),
        "inner_sweeps": Param(10, Integer(1), "HALS sweeps for each minibatch's H_t (from zero)"),
        "sweeps_W": Param(1, Integer(1), "HALS sweeps on W after each minibatch"),
    }

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        if problem.weighted:
            raise ValueError("streaming solver 'online' does not take missing entries or weights; use solver='hals'")
        self.H = None
        r = self.W.shape[1]
        like = dict(device=self.device, dtype=self.dtype)
        self.A = torch.zeros(r, r, **like)
        self.B = torch.zeros(self.W.shape[0], r, **like)
        self.c = torch.zeros((), **like)
        self.n_batches = 0
        self.weight = 0.0
        if problem.resume is not None:
            self.load_state_dict(problem.resume)

    def _state(self) -> dict:
        return {"W": self.W, "A": self.A, "B": self.B, "c": self.c, "n_batches": self.n_batches,
                "weight": self.weight}

    def step(self) -> None:
        cfg = self.config
        pen = self.penalties
        rho = float(cfg["rho"])
        for _, _, X_t in self._blocks():
            WtW = kernels.gram(self.W)
            H_t = X_t.new_zeros(self.W.shape[1], X_t.shape[1])
            kernels.hals_nnls_(H_t, kernels.wt_x(self.W, X_t), WtW, max_sweeps=cfg["inner_sweeps"], delta=0.0,
                               l1=pen.l1_H, l2=pen.l2_H)
            self.A.mul_(rho).add_(H_t @ H_t.mT)
            self.B.mul_(rho).add_(X_t @ H_t.mT)
            self.c.mul_(rho).add_(torch.linalg.vector_norm(X_t).square())
            self.n_batches += 1
            self.weight = rho * self.weight + 1.0
            self._update_W_(self.B, self.A, cfg["sweeps_W"], 0.0)
            del X_t, H_t

    def objective(self) -> Tensor:
        if self.weight == 0.0:
            return self.c.new_full((), float("inf"))
        W = self.W
        surrogate = 0.5 * self.c - torch.sum(W * self.B) + 0.5 * torch.sum(kernels.gram(W) * self.A)
        return surrogate / self.weight + self._penalty()
