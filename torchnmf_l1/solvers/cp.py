r"""Nonnegative CPD by HALS, optionally with one factor constrained to dictionary atoms.

.. math::
    \min_{A_1, \dots, A_N \ge 0} \tfrac12 \|M \ast (T - [\![A_1, \dots, A_N]\!])\|_F^2

(M the mask of observed entries, all ones by default). One iteration updates every
factor n by a few HALS sweeps on :math:`A_n^T` with A = MTTKRP^T and B = the Hadamard
product of the other Grams (``hals_nnls_``, the package's one NNLS routine); missing
entries are imputed with the current model at the start of each iteration (EM).

Dictionary constraint on mode c (dictionary D, p x d, :math:`\bar D` its unit-norm
columns): after the update of :math:`A_c`, its columns are normalised (the scale moves
to the next factor) and matched to atoms K (distinct optional). ``snap="hard"`` then
sets :math:`A_c = \bar D(:, K)`; ``snap="flexible"`` adds
:math:`\tfrac{\delta}{2}\|A_c - \bar D(:, K)\|_F^2` to the update (A += delta D_K^T,
B += delta I), delta started at :math:`0.01\|T - [\![\cdot]\!]\|^2/\|A_c - \bar D(:,K)\|^2`
and raised x1.5 while the relative gap exceeds ``raise_gap``.

References
----------
A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix
and tensor factorizations", IEICE Trans. Fundamentals, 2009.
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
G. Tomasi and R. Bro, "PARAFAC and missing values", Chemometrics and Intelligent
Laboratory Systems 75(2), 2005.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..kernels import hals_nnls_, match_atoms, subspace_atoms
from ..kernels.cp import cp_gram_hadamard, cp_mttkrp, cp_reconstruct
from ..registry import register_solver

__all__ = ["CPHALS"]


@register_solver("hals", model="cp")
class CPHALS:
    """HALS for (dictionary-constrained) nonnegative CPD; updates ``factors`` in place.

    Parameters
    ----------
    T : Tensor, order N
        Data (entries outside ``mask`` are ignored and may be anything finite).
    factors : list of N Tensors, shapes (I_n, r)
        Initial factors, updated in place.
    mask : bool Tensor like T, optional
        True where T is observed.
    dictionary : Tensor (I_c x d), optional
        Dictionary of mode ``dict_mode``.
    dict_mode : int
    distinct : bool
    snap : {"hard", "flexible"}
    atoms_init : {"match", "subspace"}
        "match": plain HALS during the warm-up, then the atoms best matching the
        factor. "subspace": the atoms whose span best contains the mode's unfolding
        (:func:`~torchnmf_l1.kernels.subspace_atoms`), set before the first iteration and
        held fixed during the warm-up while the other factors are fitted; right when the
        factor is not identifiable but its column space is (rank above the other dimensions).
    **options
        ``inner_sweeps`` (5), ``warmup`` (20: plain HALS iterations before the
        first matching, so that the atoms are not frozen from a random start),
        ``delta_factor`` (0.01), ``growth`` (1.5),
        ``raise_gap`` (0.01), ``stop_gap`` (0.05).
    """

    name: ClassVar[str] = "hals"
    options: ClassVar[dict] = dict(inner_sweeps=5, warmup=20, delta_factor=0.01, growth=1.5, raise_gap=0.01, stop_gap=0.05)

    def __init__(self, T: Tensor, factors, mask=None, *, dictionary=None, dict_mode: int = 0, distinct=True, snap="hard", atoms_init="match", **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"solver {self.name!r} got unexpected option(s) {unknown}; its options are {sorted(self.options)}")
        if snap not in ("hard", "flexible"):
            raise ValueError(f"snap must be 'hard' or 'flexible', got {snap!r}")
        if atoms_init not in ("match", "subspace"):
            raise ValueError(f"atoms_init must be 'match' or 'subspace', got {atoms_init!r}")
        self.config = {**self.options, **options}
        self.T = T
        self.factors = list(factors)
        self.mask = mask
        self.Tw = T if mask is None else torch.where(mask, T, torch.zeros_like(T))
        self.order = len(self.factors)
        self.dict_mode = dict_mode
        self.distinct = distinct
        self.snap = snap
        self.K = None
        self.previous_K = None
        self.delta = None
        self.gap = 0.0
        self.done = False
        self.iteration = 0
        self._cache = None
        self.norm_sq = torch.sum(self.Tw * self.Tw) if mask is None else None
        self.last_objective = None
        self.half_norm_sq = float(0.5 * torch.sum(self.Tw * self.Tw))
        if dictionary is not None:
            tiny = torch.finfo(dictionary.dtype).tiny
            self.Dn = dictionary / torch.linalg.vector_norm(dictionary, dim=0, keepdim=True).clamp_min(tiny)
        else:
            self.Dn = None
        r = self.factors[0].shape[1]
        self.eye = torch.eye(r, device=T.device, dtype=T.dtype)
        self.atoms_fixed = False
        if self.Dn is not None and atoms_init == "subspace":
            c = self.dict_mode
            unfolded = torch.movedim(self.Tw, c, 0).reshape(self.Tw.shape[c], -1)
            self.K = subspace_atoms(unfolded, self.Dn, r)
            self.factors[c].copy_(self.Dn.index_select(1, self.K))
            self.atoms_fixed = True

    # -- dictionary mode -------------------------------------------------------------
    def _normalise_dict_factor(self) -> None:
        c = self.dict_mode
        F = self.factors[c]
        norms = torch.linalg.vector_norm(F, dim=0).clamp_min(torch.finfo(F.dtype).tiny)
        F /= norms
        self.factors[(c + 1) % self.order] *= norms

    def _match(self) -> None:
        c = self.dict_mode
        self.previous_K = self.K
        self.K = match_atoms(self.factors[c], self.Dn, distinct=self.distinct)
        DK = self.Dn.index_select(1, self.K)
        if self.snap == "hard":
            self.factors[c].copy_(DK)
            self.gap = 0.0
            return
        gap_sq = float(torch.sum((self.factors[c] - DK) ** 2))  # one sync per iteration
        self.gap = (gap_sq / self.K.numel()) ** 0.5
        if self.delta is None:
            residual = float(2 * self.objective())
            self.delta = self.config["delta_factor"] * residual / max(gap_sq, torch.finfo(DK.dtype).eps)
        elif self.gap > self.config["raise_gap"]:
            self.delta *= self.config["growth"]

    def snap_(self) -> None:
        """Replace the dictionary factor by its atoms (scale kept in the next factor)."""
        if self.Dn is None:
            return
        self._normalise_dict_factor()
        self.K = match_atoms(self.factors[self.dict_mode], self.Dn, distinct=self.distinct)
        self.factors[self.dict_mode].copy_(self.Dn.index_select(1, self.K))

    # -- iteration -------------------------------------------------------------------
    def update_mode(self, n: int) -> None:
        """HALS sweeps on factor n (the dictionary factor is handled by :meth:`step`)."""
        F = self.factors[n]
        A = cp_mttkrp(self.Tw, self.factors, n).transpose(0, 1)
        B = cp_gram_hadamard(self.factors, n)
        flexible = self.Dn is not None and n == self.dict_mode and self.snap == "flexible" and self.K is not None
        if flexible and self.delta:
            A = A + self.delta * self.Dn.index_select(1, self.K).transpose(0, 1)
            B = B + self.delta * self.eye
        Ft = F.transpose(0, 1).contiguous()
        hals_nnls_(Ft, A, B, max_sweeps=self.config["inner_sweeps"], delta=0.0, keep_rows_positive=True)
        F.copy_(Ft.transpose(0, 1))
        self._cache = (n, A) if n == self.order - 1 else None

    def step(self) -> None:
        if self.mask is not None:
            self.Tw = torch.where(self.mask, self.T, cp_reconstruct(self.factors))
        self.iteration += 1
        self._cache = None
        constrain = self.Dn is not None and self.iteration > self.config["warmup"]
        for n in range(self.order):
            if self.atoms_fixed and not constrain and n == self.dict_mode:
                continue  # warm-up around the atoms chosen up front
            self.update_mode(n)
            if constrain and n == self.dict_mode:
                self._normalise_dict_factor()
                self._match()

    def objective(self) -> Tensor:
        r"""Half the squared error on the observed entries (0-dim tensor, no sync).

        Right after an unconstrained, unmasked step it costs no pass over T (as in
        tensorly): :math:`\|T\|^2 - 2\langle M_N, A_N\rangle + \langle \ast_n A_n^TA_n, 1\rangle`
        with :math:`M_N` the last MTTKRP; otherwise the full reconstruction is formed.
        """
        if self._cache is not None and self.mask is None and self.Dn is None:
            n, A = self._cache
            inner = torch.sum(A * self.factors[n].transpose(0, 1))
            model_sq = torch.sum(cp_gram_hadamard(self.factors, n) * (self.factors[n].transpose(0, 1) @ self.factors[n]))
            return (0.5 * (self.norm_sq - 2 * inner + model_sq)).clamp_min(0)
        residual = self.T - cp_reconstruct(self.factors)
        if self.mask is not None:
            residual = torch.where(self.mask, residual, torch.zeros_like(residual))
        return 0.5 * torch.sum(residual * residual)

    def stop_rule(self, tol: float):
        """A :func:`torchnmf_l1.run_fit` callback for the dictionary variants.

        Stops when K did not change, the relative gap is <= ``stop_gap`` (flexible)
        and the objective changed by less than ``tol`` (relatively) since the last check.
        """

        def rule(info) -> bool:
            previous, self.last_objective = self.last_objective, info.objective
            if previous is None or self.previous_K is None or not torch.equal(self.previous_K, self.K):
                return False
            if self.snap == "flexible" and self.gap > self.config["stop_gap"]:
                return False
            floor = torch.finfo(self.T.dtype).eps * self.half_norm_sq  # an exact fit counts as converged
            self.done = abs(previous - info.objective) <= tol * max(abs(previous), floor)
            return self.done

        return rule
