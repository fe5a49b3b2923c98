r"""Nonnegative CPD by HALS (one tensor or a batch), optionally with one factor constrained to dictionary atoms.

.. math::
    \min_{A_1, \dots, A_N \ge 0} \tfrac12 \|M \ast (T - [\![A_1, \dots, A_N]\!])\|_F^2

(M the mask of observed entries, all ones by default). One iteration updates every
factor n by a few HALS sweeps on :math:`A_n^T` with A = MTTKRP^T and B = the Hadamard
product of the other Grams (:func:`torchnmf_l1.kernels.hals_nnls_`); missing entries are
imputed with the current model at the start of each iteration (EM). With entry weights w
(loss :math:`\tfrac12 \sum w (T - [\![\cdot]\!])^2`), the same by Kiers' majorization:
the HALS pass fits :math:`\tilde w \ast T + (1 - \tilde w) \ast [\![\cdot]\!]`,
:math:`\tilde w = w / \max w`, which never increases the weighted loss (a mask is the case
w in {0, 1}). The step never reads the device.

Dictionary constraint on mode c (dictionary D, :math:`\bar D` its unit-norm columns): in
each iteration the modes are updated in the order c+1, ..., N-1, 0, ..., c, so that the
constrained factor comes last; its columns are then normalised (the scale moves to the
next factor). At each check (every iteration by default, on the host) they are matched to
atoms K (distinct optional, an assignment problem): ``snap="hard"`` sets
:math:`A_c = \bar D(:, K)`; ``snap="flexible"`` adds :math:`\tfrac{\delta}{2}\|A_c - \bar D(:, K)\|_F^2`
to the next updates of :math:`A_c` (A += delta D_K^T, B += delta I), delta from
:func:`torchnmf_l1.kernels.proximal_weight`. The fit ends with :math:`A_c = D(:, K)` exactly.

References
----------
A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix
and tensor factorizations", IEICE Trans. Fundamentals, 2009.
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
H. A. L. Kiers, "Weighted least squares fitting using ordinary least squares algorithms",
Psychometrika 62(2), 1997.
G. Tomasi and R. Bro, "PARAFAC and missing values", Chemometrics and Intelligent
Laboratory Systems 75(2), 2005.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults
from ..params import Integer, Param
from ..problem import CPProblem, CPState
from ..registry import register_solver
from .base import Solver, SolverOutput
from .dictionary import PROXIMAL_OPTIONS

__all__ = ["CPHALS"]


@register_solver("hals", family="cp")
class CPHALS(Solver):
    """HALS for (dictionary-constrained) nonnegative CPD; updates ``state.factors`` in place.

    ``atoms_init`` of the problem: ``"match"`` runs plain HALS during the warm-up, then
    matches the factor to atoms; ``"subspace"`` chooses the atoms whose span best contains
    the mode's unfolding (:func:`~torchnmf_l1.kernels.subspace_atoms`) before the first
    iteration and holds them during the warm-up while the other factors are fitted.
    """

    options = {
        "inner_sweeps": Param(5, Integer(1), "HALS sweeps per factor and iteration (5 as in tensorly)"),
        "warmup": Param(20, Integer(0), "plain HALS iterations before the first matching to atoms"),
        **{k: v for k, v in PROXIMAL_OPTIONS.items() if k != "inner_sweeps"},
    }
    fit_defaults = FitDefaults(max_iter=200, tol=1e-6, check_every=1)
    monotone = True  # without a dictionary (whose matching moves the factor)
    batched = True

    def __init__(self, problem: CPProblem, state: CPState, **options):
        super().__init__(problem, state, **options)
        T, mask = problem.T, problem.mask
        self.factors = state.factors
        self.order = len(self.factors)
        self.Tw = T if mask is None else torch.where(mask, T, 0.0)
        dims = tuple(range(-self.order, 0))
        self.relative_weights = None
        if problem.weights is not None:
            top = problem.weights.amax(dim=dims, keepdim=True)
            self.relative_weights = problem.weights / top.clamp_min(torch.finfo(T.dtype).tiny)
            self.Tw = self.Tw * self.relative_weights
            self.norm_sq = (problem.weights * T.square()).sum(dim=dims)
        else:
            self.norm_sq = self.Tw.square().sum(dim=dims)
        self.c = problem.dict_mode
        self.Dn = None if problem.dictionary is None else kernels.normalize_columns(
            problem.dictionary, eps=torch.finfo(problem.dictionary.dtype).tiny)[0]
        self.K = self.previous_K = None
        self.delta = None
        if self.config["result"] == "relaxed" and (problem.dictionary is None or problem.snap != "flexible"):
            raise ValueError("result='relaxed' keeps the relaxed factor of a flexible dictionary mode; it needs "
                             f"a dictionary and snap='flexible', got snap={problem.snap!r}")
        self.gap = 0.0
        self.iteration = 0
        self._last_mttkrp = None
        self._last_objective = None
        r = self.factors[0].shape[-1]
        self.eye = torch.eye(r, device=T.device, dtype=T.dtype)
        self.atoms_fixed = False
        if self.Dn is not None and problem.atoms_init == "subspace":
            unfolded = torch.movedim(self.Tw, self.c, 0).reshape(self.Tw.shape[self.c], -1)
            self.K = kernels.subspace_atoms(unfolded, self.Dn, r)
            self.factors[self.c].copy_(self.Dn.index_select(1, self.K))
            self.atoms_fixed = True
        c = self.c
        self.mode_order = list(range(self.order)) if self.Dn is None else [(c + 1 + k) % self.order for k in range(self.order)]

    @classmethod
    def check_problem(cls, problem: CPProblem) -> None:
        if problem.dictionary is not None and problem.batch is not None:
            raise ValueError("the dictionary-constrained CPD fits one tensor at a time, got a batch")

    def _device(self) -> torch.device:
        return self.problem.T.device

    @property
    def constrained(self) -> bool:
        return self.Dn is not None and self.iteration > self.config["warmup"]

    def update_mode(self, n: int) -> None:
        """HALS sweeps on factor n (with the proximal pull for a flexible dictionary mode)."""
        F = self.factors[n]
        A = kernels.cp_mttkrp(self.Tw, self.factors, n).mT
        B = kernels.cp_gram_hadamard(self.factors, n)
        if self.Dn is not None and n == self.c and self.problem.snap == "flexible" and self.delta is not None:
            A = A + self.delta * self.Dn.index_select(1, self.K).mT
            B = B + self.delta * self.eye
        Ft = F.mT.contiguous()
        kernels.hals_nnls_(Ft, A, B, max_sweeps=self.config["inner_sweeps"], delta=0.0, keep_rows_positive=True,
                           active=self.active)
        F.copy_(Ft.mT)
        self._last_mttkrp = (n, A) if n == self.mode_order[-1] else None

    def _normalise_dict_factor(self) -> None:
        F = self.factors[self.c]
        normalised, norms = kernels.normalize_columns(F, eps=torch.finfo(F.dtype).tiny)
        F.copy_(normalised)
        self.factors[(self.c + 1) % self.order].mul_(norms)

    def step(self) -> None:
        """One HALS pass over the factors; the EM imputation first when entries are missing."""
        if self.relative_weights is not None:
            model = kernels.cp_reconstruct(self.factors)
            self.Tw = torch.lerp(model, self.problem.T, self.relative_weights)
        elif self.problem.mask is not None:
            self.Tw = torch.where(self.problem.mask, self.problem.T, kernels.cp_reconstruct(self.factors))
        self.iteration += 1
        self._last_objective = None
        # the factors' scale freedom, fixed: equal column norms across the free modes
        kernels.cp_balance_(self.factors, [n for n in range(self.order) if self.Dn is None or n != self.c])
        constrained = self.constrained
        for n in self.mode_order:
            if self.atoms_fixed and not constrained and n == self.c:
                continue  # warm-up around the atoms chosen up front
            self.update_mode(n)
        if constrained:
            self._normalise_dict_factor()

    def at_check(self, tol: float):
        """Dictionary variants: the atoms (host assignment), the delta schedule and the stopping
        rule (K stable, the gap small when flexible, the relative change of the objective < tol)."""
        if not self.constrained:
            self._last_objective = None
            return None if self.Dn is None else [False]
        c, config = self.c, self.config
        self.previous_K = self.K
        self.K = kernels.match_atoms(self.factors[c], self.Dn, distinct=self.problem.distinct, groups=self.problem.groups,
                                        counts=self.problem.counts)
        DK = self.Dn.index_select(1, self.K)
        if self.problem.snap == "hard":
            self.factors[c].copy_(DK)
            self.gap = 0.0
        else:
            gap_sq, gap = kernels.atom_gap(self.factors[c], DK)
            if config["delta"] is not None:  # a fixed weight, relative to ||T||^2
                self.delta = config["delta"] * self.norm_sq
            else:
                self.delta = kernels.proximal_weight(
                    self.delta, 2 * self.objective(), gap_sq, gap, factor=config["delta_factor"],
                    growth=config["growth"], raise_gap=config["raise_gap"],
                )
            self.gap = float(gap)
        self._last_mttkrp = None
        current = float(self.objective())
        previous, self._last_check = getattr(self, "_last_check", None), current
        if previous is None or self.previous_K is None or not torch.equal(self.previous_K, self.K):
            return [False]
        if self.problem.snap == "flexible" and config["delta"] is None and self.gap > config["stop_gap"]:
            return [False]
        floor = torch.finfo(self.problem.T.dtype).eps * 0.5 * float(self.norm_sq)  # an exact fit counts
        return [abs(previous - current) <= tol * max(abs(previous), floor)]

    def objective(self) -> Tensor:
        r"""Half the squared error on the observed entries: 0-dim, or (B,) (no sync).

        Right after an unconstrained, unmasked step it costs no pass over T (as in
        tensorly): :math:`\|T\|^2 - 2\langle M_N, A_N\rangle + \langle \ast_n A_n^TA_n, A_N^TA_N\rangle`
        with :math:`M_N` the last MTTKRP; otherwise the full reconstruction is formed.
        """
        if self._last_objective is not None:
            return self._last_objective
        dims = tuple(range(-self.order, 0))
        if self._last_mttkrp is not None and self.problem.mask is None and self.problem.weights is None and self.Dn is None:
            n, A = self._last_mttkrp
            F = self.factors[n]
            inner = (A * F.mT).sum(dim=(-2, -1))
            model_sq = (kernels.cp_gram_hadamard(self.factors, n) * (F.mT @ F)).sum(dim=(-2, -1))
            value = (0.5 * (self.norm_sq - 2 * inner + model_sq)).clamp_min(0)
        else:
            residual = self.problem.T - kernels.cp_reconstruct(self.factors)
            if self.problem.weights is not None:
                value = 0.5 * (self.problem.weights * residual.square()).sum(dim=dims)
            else:
                if self.problem.mask is not None:
                    residual = torch.where(self.problem.mask, residual, 0.0)
                value = 0.5 * residual.square().sum(dim=dims)
        self._last_objective = value
        return value

    def finish(self) -> SolverOutput:
        extra = {}
        if self.Dn is not None:
            # the final snap: factor c = D(:, K) exactly, its scale moved to the next factor
            c = self.c
            self._normalise_dict_factor()
            self.K = kernels.match_atoms(self.factors[c], self.Dn, distinct=self.problem.distinct, groups=self.problem.groups,
                                        counts=self.problem.counts)
            if self.config["result"] == "relaxed":  # the relaxed factor as it is: near the atoms, not on them
                self.gap = float(kernels.atom_gap(self.factors[c], self.Dn.index_select(1, self.K))[1])
                return self._output(extra)
            raw = self.problem.dictionary.index_select(1, self.K)
            self.factors[c].copy_(raw)
            self.factors[(c + 1) % self.order].div_(torch.linalg.vector_norm(raw, dim=0))
            if self.problem.snap == "flexible":  # polish the free factors around the snapped atoms
                self.delta = None
                for _ in range(10):
                    for n in range(self.order):
                        if n != c:
                            self.update_mode(n)
            self.gap = 0.0
        return self._output(extra)

    def _output(self, extra: dict) -> SolverOutput:
        if self.Dn is not None:
            self._last_mttkrp = self._last_objective = None
            extra["indices"] = self.K.tolist()
            extra["gap"] = self.gap
            extra["delta"] = None if self.delta is None else float(self.delta)
            extra["final_objective"] = float(self.objective())
        # the reported error from the residual itself: the cheap formula of objective()
        # cancels ||T||^2 against the model's terms (sqrt(eps) resolution in float32)
        self._last_mttkrp = self._last_objective = None
        value = self.objective()
        norm = self.norm_sq.sqrt().clamp_min(torch.finfo(value.dtype).tiny)
        extra["relative_error"] = (torch.sqrt(2 * value) / norm).tolist()
        factors = {"factors": list(self.factors)}
        if self.K is not None:
            factors["indices"] = self.K
        return SolverOutput(factors, extra)

