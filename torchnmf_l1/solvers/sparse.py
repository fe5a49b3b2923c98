r"""Low-rank sparse component analysis (family ``"sparse"``): alternating k-sparse coding and a basis update.

.. math:: \min_{W,\ H} \tfrac12 \|X - WH\|_F^2 \quad\text{s.t.}\quad \|H(:, j)\|_0 \le k \ \ \forall j
   \qquad (\text{and } W, H \ge 0 \text{ for the nonnegative variant})

Each step computes the codes of every column for the current W, exactly (every support
of size <= k, :func:`torchnmf_l1.kernels.ksparse_codes`) or greedily, then updates W for
those codes: HALS sweeps of the NNLS problem in W (nonnegative) or the least-squares
solution (sign-free); the columns of W are then scaled to unit norm (the rows of H
inversely). With exact codes both half-steps are exact or descent steps, so the objective
never increases. A batch of starts (W of shape (B, m, r)) runs as one problem.

References
----------
J. E. Cohen and N. Gillis, "Identifiability of complete dictionary learning", SIAM J.
Mathematics of Data Science 1(3), 2019.
N. Nadisic, A. Vandaele, N. Gillis and J. E. Cohen, "Exact sparse nonnegative least
squares", ICASSP 2020.
M. Aharon, M. Elad and A. Bruckstein, "K-SVD: an algorithm for designing overcomplete
dictionaries for sparse representation", IEEE Trans. Signal Processing 54(11), 2006
(the same alternation with a different basis update).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..params import Integer, Number, Param
from ..problem import FactorState, SparseProblem
from ..registry import register_solver
from .base import Solver, SolverOutput

__all__ = ["AlternatingSparseCoding"]


@register_solver("alternating", family="sparse")
class AlternatingSparseCoding(Solver):
    """k-sparse codes, then the basis for them (module docstring); one problem or a batch of starts.

    The state is a :class:`~torchnmf_l1.problem.FactorState` with W ((m, r) or (B, m, r));
    its H is replaced by the codes of that W when the solver is built.
    """

    family = "sparse"
    monotone = True
    batched = True
    fit_defaults = FitDefaults(max_iter=500, tol=1e-6, check_every=5)
    options = {
        "w_sweeps": Param(20, Integer(1), "HALS sweeps of the nonnegative W update per step (warm-started)"),
        "w_delta": Param(1e-3, Number(0), "relative change under which the W sweeps stop (see hals_nnls_)"),
        "greedy_sweeps": Param(100, Integer(1), "HALS sweeps of each restricted NNLS of the greedy codes"),
    }

    def __init__(self, problem: SparseProblem, state: FactorState, **options):
        super().__init__(problem, state, **options)
        X, W = problem.X, state.W
        r = W.shape[-1]
        lead = () if problem.batch is None else (problem.batch,)
        if tuple(W.shape) != lead + (X.shape[0], r):
            raise ValueError(f"W must have shape {lead + (X.shape[0], r)}, got {tuple(W.shape)}")
        if not 1 <= problem.k <= r:
            raise ValueError(f"k must be in [1, r = {r}], got {problem.k}")
        self.X_t = X.mT.contiguous()
        self.supports = kernels.support_sets(r, problem.k, W.device) if problem.coding == "exact" else None
        state.H = self._codes(W)

    def _device(self) -> torch.device:
        return self.state.W.device

    def _codes(self, W: Tensor) -> Tensor:
        p = self.problem
        return kernels.ksparse_codes(W, p.X, p.k, method=p.coding, nonnegative=p.nonnegative,
                                     max_sweeps=self.config["greedy_sweeps"], supports=self.supports)

    def _keep_stopped(self, new: Tensor, old: Tensor) -> Tensor:
        """``new`` for the problems still iterating, ``old`` for those that have stopped."""
        if self.active is None:
            return new
        return torch.where(self.active.view(self.active.shape + (1, 1)), new, old)

    def step(self) -> None:
        W, p = self.state.W, self.problem
        H = self._keep_stopped(self._codes(W), self.state.H)
        gram = kernels.gram(H, transpose=True)
        HXt = H @ self.X_t  # (.., r, m)
        if p.nonnegative:
            Wt = W.mT.contiguous()
            kernels.hals_nnls_(Wt, HXt, gram, max_sweeps=self.config["w_sweeps"], delta=self.config["w_delta"],
                               keep_rows_positive=True, active=self.active, overwrite_A=True)
            W_new = Wt.mT
        else:
            W_new = self._keep_stopped(kernels.ridged_solve(gram, HXt).mT, W)
        W_new, norms = kernels.normalize_columns(W_new)
        self.state.W, self.state.H = W_new, H * norms.unsqueeze(-1)

    def objective(self) -> Tensor:
        return kernels.frobenius_loss(self.problem.X, self.state.W, self.state.H)

    def finish(self) -> SolverOutput:
        W, H = self.state.W.contiguous(), self.state.H.contiguous()
        error = kernels.relative_error(self.problem.X, W, H)
        return SolverOutput({"W": W, "H": H}, {"relative_error": error.tolist()})
