r"""Dictionary NMF by the relaxed (proximal) model of Cohen and Gillis.

Find r atoms K of a known dictionary D (p x d) and V >= 0 with X ~ D(:, K) V through

.. math::
    \min_{U \ge 0,\, V \ge 0,\, K}\; \tfrac12\|X - UV\|_F^2 + \tfrac{\delta}{2}\|U - \bar D(:, K)\|_F^2,

where :math:`\bar D` has unit-norm columns and U's columns are kept at unit norm (the
scale moves to V). One iteration (:meth:`ProximalDictionaryNMF.step`, device only): V by
HALS (A = U^T X, B = U^T U); U by HALS with the proximal term (A = V X^T + delta D(:,K)^T,
B = V V^T + delta I), normalised. At each check (every iteration by default,
:meth:`~ProximalDictionaryNMF.at_check`, on the host): K by the best-correlated
normalised atom of every column of U (distinct atoms through an assignment problem;
several dictionaries with required counts through the assignment on duplicated
columns), then the weight delta (:func:`torchnmf_l1.kernels.proximal_weight`): started at
:math:`0.01\|X-UV\|_F^2/\|U-\bar D(:,K)\|_F^2` and multiplied by 1.5 while
:math:`\|U-\bar D(:,K)\|_F > 0.01\|\bar D(:,K)\|_F`. The fit stops when K did not change
and :math:`\|U-\bar D(:,K)\|_F \le 0.05\|\bar D(:,K)\|_F`.

With a fixed ``delta=lambda`` the weight stays :math:`\delta = \lambda\|X\|_F^2` (the
flexible constraint of Cohen and Gillis at a chosen strength) and ``result="relaxed"``
returns U and V themselves: atoms adjusted to the data, close to, not equal to, D(:, K).

The starting atoms: r random atoms, or the columns a separable method picks on X (run
through the registry and the shared fit path, so d-X starts exactly where X ends), each
matched to its best atom. The end: H = argmin ||X - D(:, K) H||, never worse than the start.

References
----------
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
J. E. Cohen and N. Gillis, "Spectral unmixing with multiple dictionaries", IEEE
Geoscience and Remote Sensing Letters 15(2), 2018.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from .. import kernels
from ..fit import FitDefaults, FitOptions, fit_solver
from ..params import Choice, Integer, Number, OneOf, Param
from ..data import Data
from ..problem import DictionaryProblem, FactorState, NMFProblem, resolve_loss
from ..registry import get_solver, register_solver
from .base import Solver, SolverOutput

__all__ = ["ProximalDictionaryNMF"]

PROXIMAL_OPTIONS = {
    "inner_sweeps": Param(10, Integer(1), "HALS sweeps per block and iteration"),
    "delta_factor": Param(0.01, Number(0, closed="neither"), "the first delta, as a fraction of the fit over the gap"),
    "growth": Param(1.5, Number(1), "factor of delta while the gap exceeds raise_gap"),
    "raise_gap": Param(0.01, Number(0), "relative gap above which delta grows"),
    "stop_gap": Param(0.05, Number(0), "relative gap under which a stable K stops the fit"),
    "delta": Param(
        None, OneOf(None, Number(0, closed="neither")),
        "None: the growing schedule; a number lambda: a fixed weight delta = lambda ||X||_F^2 (relative to the "
        "data, so that lambda means the same at any scale), the model then kept relaxed at that weight and a "
        "stable K with a relative change of the objective under stop_change stopping the fit",
    ),
    "stop_change": Param(1e-6, Number(0), "fixed delta: relative change of the objective under which a stable K stops"),
    "result": Param(
        "atoms", Choice("atoms", "relaxed"),
        "'atoms': W = D(:, K) exactly, H refitted; 'relaxed': W = U, the factor of the relaxed model "
        "(unit-norm columns near the atoms, not equal to them) and H = V",
    ),
}


@register_solver("proximal", family="dictionary")
class ProximalDictionaryNMF(Solver):
    """Alternating proximal HALS for dictionary NMF (module docstring).

    Attributes
    ----------
    U : Tensor, shape (p, r)
        The relaxed factor (unit-norm columns).
    V : Tensor, shape (r, n)
    K : Tensor of int64, shape (r,)
    delta : Tensor or None
    gap : float
        :math:`\\|U - \\bar D(:,K)\\|_F / \\|\\bar D(:,K)\\|_F` at the last check.
    """

    options = PROXIMAL_OPTIONS
    fit_defaults = FitDefaults(max_iter=200, tol=0.0, check_every=1)

    def __init__(self, problem: DictionaryProblem, state=None, **options):
        super().__init__(problem, state, **options)
        start = time.perf_counter()
        D, X = problem.dictionary, problem.X
        tiny = torch.finfo(D.dtype).tiny
        self.X, self.D = X, D
        self.Dn, _ = kernels.normalize_columns(D, eps=tiny)
        self.separable = None
        K0, H0 = self._initial()
        self.time_init = time.perf_counter() - start
        self.K0, self.H0 = K0, H0
        self.init_error = float(kernels.relative_error(X, D.index_select(1, K0), H0))
        self.K = K0
        self.previous_K = K0
        self.U = self.Dn.index_select(1, K0).clone()
        self.V = H0 * torch.linalg.vector_norm(D.index_select(1, K0), dim=0)[:, None]
        fixed = self.config.get("delta")
        self.fixed_delta = fixed is not None
        self.delta = X.new_tensor(fixed) * torch.sum(X * X) if self.fixed_delta else None
        self.gap = float("inf")
        self._previous_objective = None
        self.eye = torch.eye(K0.numel(), device=X.device, dtype=X.dtype)
        self._started = time.perf_counter()

    def _match(self, U: Tensor, D: Tensor) -> Tensor:
        p = self.problem
        return kernels.match_atoms(U, D, distinct=p.distinct, groups=p.groups, counts=p.counts)

    def _nnls(self, K: Tensor, H0: Tensor | None = None) -> Tensor:
        W = self.D.index_select(1, K)
        start = kernels.least_squares_start(W, self.X) if H0 is None else H0
        return kernels.nnls_columns(self.X, W, start, max_sweeps=self.problem.nnls_max_sweeps, delta=1e-6)

    def _initial(self) -> tuple[Tensor, Tensor]:
        """K0 (matched atoms) and H0 = argmin ||X - D(:,K0) H||."""
        p, D = self.problem, self.D
        if p.init == "random":
            choice = torch.randperm(D.shape[1], generator=p.generator, device=D.device)[: p.rank]
            K0 = self._match(D.index_select(1, choice), D)
            return K0, self._nnls(K0)
        # the plain separable method, so that d-X starts where X ends (same problem, same options)
        start = time.perf_counter()
        solver = get_solver(p.init, family="separable").create(p.init_problem, None, **(p.init_options or {}))
        result, output = fit_solver(solver, FitOptions(warn=False))
        U0, H0 = output.factors["W"], output.factors["H"]
        options = dict(p.init_options or {})
        if p.init_problem.subsample is not None:
            options["subsample"] = p.init_problem.subsample
        self.separable = dict(
            method=p.init,
            options=options,
            indices=result.extra["indices"],
            relative_error=result.extra["relative_error"],
            n_iter=result.n_iter,
            time=time.perf_counter() - start,
        )
        K0 = self._match(U0, D)
        if torch.equal(D.index_select(1, K0), U0):
            return K0, H0.clone()  # the atoms are the selected columns (X is its own dictionary)
        # warm start: X(:, k)'s weights rescaled to the norm of its matched atom
        tiny = torch.finfo(D.dtype).tiny
        ratio = torch.linalg.vector_norm(U0, dim=0) / torch.linalg.vector_norm(D.index_select(1, K0), dim=0).clamp_min(tiny)
        return K0, self._nnls(K0, H0 * ratio[:, None])

    def step(self) -> None:
        """V, then U with the proximal pull towards the current atoms; no host sync."""
        sweeps = self.config["inner_sweeps"]
        U, V, X = self.U, self.V, self.X
        kernels.hals_nnls_(V, U.mT @ X, U.mT @ U, max_sweeps=sweeps, delta=0.0)
        DK = self.Dn.index_select(1, self.K)
        delta = 0.0 if self.delta is None else self.delta
        Ut = U.mT.contiguous()
        A = V @ X.mT + delta * DK.mT
        B = V @ V.mT + delta * self.eye
        kernels.hals_nnls_(Ut, A, B, max_sweeps=sweeps, delta=0.0, keep_rows_positive=True)
        self.U, norms = kernels.normalize_columns(Ut.mT, eps=torch.finfo(U.dtype).tiny)
        self.V = V * norms[:, None]

    def at_check(self, tol: float):
        """The assignment of atoms (on the host), the delta schedule and the stopping rule."""
        c = self.config
        self.previous_K, self.K = self.K, self._match(self.U, self.Dn)
        gap_sq, gap = kernels.atom_gap(self.U, self.Dn.index_select(1, self.K))
        self.gap = float(gap)
        stable = bool(torch.equal(self.previous_K, self.K))
        if self.fixed_delta:
            current = float(self.objective())
            previous, self._previous_objective = self._previous_objective, current
            return [stable and previous is not None and abs(previous - current) <= c["stop_change"] * abs(previous)]
        residual = 2 * kernels.frobenius_loss(self.X, self.U, self.V)
        self.delta = kernels.proximal_weight(
            self.delta, residual, gap_sq, gap, factor=c["delta_factor"], growth=c["growth"], raise_gap=c["raise_gap"]
        )
        return [stable and self.gap <= c["stop_gap"]]

    def objective(self) -> Tensor:
        """Relaxed objective :math:`\\tfrac12\\|X-UV\\|^2 + \\tfrac{\\delta}{2}\\|U - \\bar D(:,K)\\|^2` (0-dim)."""
        delta = 0.0 if self.delta is None else self.delta
        DK = self.Dn.index_select(1, self.K)
        return kernels.frobenius_loss(self.X, self.U, self.V) + 0.5 * delta * torch.sum((self.U - DK) ** 2)

    def finish(self) -> SolverOutput:
        if self.config.get("result", "atoms") == "relaxed":
            return self._finish_relaxed()
        D, X, K = self.D, self.X, self.K
        scale = torch.linalg.vector_norm(D.index_select(1, K), dim=0).clamp_min(torch.finfo(D.dtype).tiny)
        H = self._nnls(K, (self.V / scale[:, None]).clamp_min(0))
        error = float(kernels.relative_error(X, D.index_select(1, K), H))
        kept_init = error > self.init_error
        if kept_init:  # never return worse than the start (reported in extra)
            K, H, error = self.K0, self.H0, self.init_error
        return SolverOutput({"indices": K, "H": H}, self._report(K, error, self.gap, kept_init))

    def _report(self, K: Tensor, error: float, gap: float, kept_init: bool) -> dict:
        return dict(
            kept_init=kept_init,
            indices=K.tolist(),
            init_indices=self.K0.tolist(),
            init_relative_error=self.init_error,
            relative_error=error,
            delta=None if self.delta is None else float(self.delta),
            gap=gap,
            time_init=self.time_init,
            separable=self.separable,
            time_total=self.time_init + time.perf_counter() - self._started,
        )

    def _finish_relaxed(self) -> SolverOutput:
        """W = U and H = V of the relaxed model as they are (K: the atoms U is nearest to)."""
        X, U, V = self.X, self.U, self.V
        K = self._match(U, self.Dn)
        error = float(kernels.relative_error(X, U, V))
        extra = self._report(K, error, float(kernels.atom_gap(U, self.Dn.index_select(1, K))[1]), False)
        return SolverOutput({"indices": K, "H": V.clone(), "U": U.clone()}, extra)


@register_solver("nmfdico", family="dictionary")
class AuthorsDictionaryNMF(ProximalDictionaryNMF):
    r"""Dictionary NMF as Cohen and Gillis's MATLAB ``NMFdico`` runs it.

    The same relaxed model as :class:`ProximalDictionaryNMF`, with the authors' choices:
    from U = D(:, K0) and V = argmin ||X - U V||, ``warmup`` iterations of accelerated HALS
    (Gillis and Glineur; alpha = 0.5, delta = 0.1) on U and V without the proximal term;
    then per iteration K by the best-correlated normalised atom of each column of U, V by
    HALS on the atoms themselves (:math:`\min_V \|X - D(:,K)V\|`), U by HALS with the
    proximal pull towards the raw atoms D(:, K) (no normalisation), and delta multiplied by
    ``growth`` while :math:`\|U - D(:,K)\|_2 / \|U\|_2` (spectral norms) exceeds
    ``raise_gap``, from :math:`\delta_0 = 0.01\|X - UV\|_F^2 / \|U - D(:,K)\|_F^2`; the fit stops
    once K has not changed over ``stable_iters`` iterations and that gap is under ``stop_gap``
    (at most 30 iterations by default, as the authors'). The end is the shared one: H =
    argmin ||X - D(:, K) H||, never worse than the start.
    """

    options = {
        "inner_sweeps": Param(10, Integer(1), "HALS sweeps per block and iteration (the authors' inneriter)"),
        "warmup": Param(10, Integer(0), "accelerated HALS iterations on (U, V) before the atom search"),
        "delta_factor": Param(0.01, Number(0, closed="neither"), "the first delta, as a fraction of the fit over the gap"),
        "growth": Param(1.5, Number(1), "factor of delta while the gap exceeds raise_gap"),
        "raise_gap": Param(0.01, Number(0), "relative spectral-norm gap above which delta grows"),
        "stop_gap": Param(0.05, Number(0), "relative spectral-norm gap under which a stable K stops the fit"),
        "stable_iters": Param(5, Integer(1), "iterations without a change of K before the fit may stop"),
    }
    fit_defaults = FitDefaults(max_iter=30, tol=0.0, check_every=1)

    def __init__(self, problem: DictionaryProblem, state=None, **options):
        super().__init__(problem, state, **options)
        self.fixed_delta = False
        X, D = self.X, self.D
        # the warm-up is the package's accelerated HALS with the paper's settings (alpha = 0.5,
        # delta = 0.1, the flop model of its sweep count, no cap, no rescaling)
        hals = get_solver("hals")(
            NMFProblem(Data.from_tensor(X), resolve_loss("frobenius")),
            FactorState(D.index_select(1, self.K0).clone(), self.H0.clone()),
            alpha=0.5, delta=0.1, launch_cost=0.0, max_inner_sweeps=2**31 - 1, scale_init=False,
        )
        for _ in range(self.config["warmup"]):
            hals.step()
        self.U, self.V = hals.state.W, hals.state.H
        DK = D.index_select(1, self.K)
        # the authors add 1e-6 to the gap (U = D(:, K) exactly without a warm-up); relative here
        floor = 1e-6 * DK.square().sum() + torch.finfo(X.dtype).tiny
        self.delta = self.config["delta_factor"] * (X - self.U @ self.V).square().sum() / \
            ((self.U - DK).square().sum() + floor)
        self.K = self._match(self.U, self.Dn)
        self.changes: list[int] = []

    def step(self) -> None:
        """V on the atoms D(:, K), then U with the pull towards them; no host sync."""
        sweeps = self.config["inner_sweeps"]
        X, DK = self.X, self.D.index_select(1, self.K)
        kernels.hals_nnls_(self.V, DK.mT @ X, DK.mT @ DK, max_sweeps=sweeps, delta=0.0)
        V = self.V
        Ut = self.U.mT.contiguous()
        A = V @ X.mT + self.delta * DK.mT
        B = V @ V.mT + self.delta * self.eye
        kernels.hals_nnls_(Ut, A, B, max_sweeps=sweeps, delta=0.0, keep_rows_positive=True)
        self.U = Ut.mT

    def _spectral_gap(self) -> float:
        DK = self.D.index_select(1, self.K)
        top = torch.linalg.matrix_norm(self.U, ord=2).clamp_min(torch.finfo(self.U.dtype).tiny)
        return float(torch.linalg.matrix_norm(self.U - DK, ord=2) / top)

    def at_check(self, tol: float):
        """delta's growth and the stop on the host; then the next K."""
        c = self.config
        self.gap = self._spectral_gap()
        if self.gap > c["raise_gap"]:
            self.delta = self.delta * c["growth"]
        stable = len(self.changes) >= c["stable_iters"] and not any(self.changes[-c["stable_iters"]:])
        done = stable and self.gap < c["stop_gap"]
        self.previous_K, self.K = self.K, self._match(self.U, self.Dn)
        self.changes.append(int((self.K != self.previous_K).sum()))
        return [done]

    def objective(self) -> Tensor:
        """:math:`\\tfrac12\\|X - D(:,K)V\\|^2` (0-dim): the fit of the atoms, which this variant tracks."""
        return kernels.frobenius_loss(self.X, self.D.index_select(1, self.K), self.V)

    def finish(self) -> SolverOutput:
        # the shared end expects V in units of the normalised atoms; here V multiplies the raw atoms
        scale = torch.linalg.vector_norm(self.D.index_select(1, self.K), dim=0)
        self.V = self.V * scale[:, None]
        return super().finish()
