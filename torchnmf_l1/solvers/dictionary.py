r"""Dictionary NMF by the relaxed (proximal) model of Cohen and Gillis.

Find r atoms K of a known dictionary D (p x d) and V >= 0 with X ~ D(:, K) V through

.. math::
    \min_{U \ge 0,\, V \ge 0,\, K}\; \tfrac12\|X - UV\|_F^2 + \tfrac{\delta}{2}\|U - \bar D(:, K)\|_F^2,

where :math:`\bar D` has unit-norm columns and U's columns are kept at unit norm (the
scale moves to V). One iteration: V by HALS (A = U^T X, B = U^T U); U by HALS with the
proximal term (A = V X^T + delta D(:,K)^T, B = V V^T + delta I); K by the best-correlated
normalised atom of every column of U (distinct atoms through an assignment problem;
several dictionaries with required counts through the assignment on duplicated columns).
delta starts at :math:`0.01\|X-UV\|_F^2/\|U-\bar D(:,K)\|_F^2` and is multiplied by 1.5
while :math:`\|U-\bar D(:,K)\|_F > 0.01\|\bar D(:,K)\|_F`; the iteration stops when K did
not change and :math:`\|U-\bar D(:,K)\|_F \le 0.05\|\bar D(:,K)\|_F`.

References
----------
J. E. Cohen and N. Gillis, "Dictionary-based tensor canonical polyadic decomposition",
IEEE Trans. Signal Processing 66(7), 2018.
J. E. Cohen and N. Gillis, "Spectral unmixing with multiple dictionaries", IEEE
Geoscience and Remote Sensing Letters 15(2), 2018.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ..kernels import frobenius_loss, hals_nnls_, match_atoms
from ..registry import register_solver

__all__ = ["ProximalDictionaryNMF"]


@register_solver("proximal", model="dictionary")
class ProximalDictionaryNMF:
    """Alternating proximal HALS for dictionary NMF (updates U, V, K in place).

    Parameters
    ----------
    X : Tensor, shape (p, n)
        Dense nonnegative data.
    D : Tensor, shape (p, d)
        Dictionary (columns are the atoms).
    K : Tensor of int64, shape (r,)
        Initial atoms.
    V : Tensor, shape (r, n)
        Initial weights (updated in place).
    distinct, groups, counts :
        Passed to :func:`torchnmf_l1.kernels.match_atoms`.
    **options
        ``inner_sweeps`` (HALS sweeps per block, 10), ``delta_factor`` (0.01),
        ``growth`` (1.5), ``raise_gap`` (0.01), ``stop_gap`` (0.05).

    Attributes
    ----------
    U : Tensor, shape (p, r)
        The relaxed factor (unit-norm columns).
    delta : float
    gap : float
        :math:`\\|U - \\bar D(:,K)\\|_F / \\|\\bar D(:,K)\\|_F` at the last step.
    done : bool
        The stopping rule is met.
    """

    name: ClassVar[str] = "proximal"
    options: ClassVar[dict] = dict(inner_sweeps=10, delta_factor=0.01, growth=1.5, raise_gap=0.01, stop_gap=0.05)

    def __init__(self, X: Tensor, D: Tensor, K: Tensor, V: Tensor, *, distinct=True, groups=None, counts=None, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"solver {self.name!r} got unexpected option(s) {unknown}; its options are {sorted(self.options)}")
        self.config = {**self.options, **options}
        tiny = torch.finfo(D.dtype).tiny
        self.X = X
        self.D = D
        self.Dn = D / torch.linalg.vector_norm(D, dim=0, keepdim=True).clamp_min(tiny)
        self.K = K
        self.V = V
        self.U = self.Dn.index_select(1, K).clone()
        self.distinct, self.groups, self.counts = distinct, groups, counts
        self.delta = None
        self.gap = float("inf")
        self.done = False
        self.eye = torch.eye(K.numel(), device=X.device, dtype=X.dtype)

    def _normalise(self) -> None:
        norms = torch.linalg.vector_norm(self.U, dim=0).clamp_min(torch.finfo(self.U.dtype).tiny)
        self.U /= norms
        self.V *= norms[:, None]

    def step(self) -> None:
        sweeps = self.config["inner_sweeps"]
        U, V, X = self.U, self.V, self.X
        hals_nnls_(V, U.transpose(0, 1) @ X, U.transpose(0, 1) @ U, max_sweeps=sweeps, delta=0.0)
        DK = self.Dn.index_select(1, self.K)
        delta = 0.0 if self.delta is None else self.delta
        Ut = U.transpose(0, 1).contiguous()
        A = V @ X.transpose(0, 1) + delta * DK.transpose(0, 1)
        B = V @ V.transpose(0, 1) + delta * self.eye
        hals_nnls_(Ut, A, B, max_sweeps=sweeps, delta=0.0, keep_rows_positive=True)
        U.copy_(Ut.transpose(0, 1))
        self._normalise()
        previous = self.K
        self.K = match_atoms(U, self.Dn, distinct=self.distinct, groups=self.groups, counts=self.counts)
        DK = self.Dn.index_select(1, self.K)
        # one host sync per iteration: the stopping rule and the delta schedule need the gap
        gap_sq = float(torch.sum((U - DK) ** 2))
        self.gap = (gap_sq / self.K.numel()) ** 0.5  # ||D_K||_F^2 = r (unit atoms)
        if self.delta is None:
            residual = float(2 * frobenius_loss(X, U, V))
            self.delta = self.config["delta_factor"] * residual / max(gap_sq, torch.finfo(X.dtype).eps)
        elif self.gap > self.config["raise_gap"]:
            self.delta *= self.config["growth"]
        self.done = bool(torch.equal(previous, self.K)) and self.gap <= self.config["stop_gap"]

    def objective(self) -> Tensor:
        """Relaxed objective :math:`\\tfrac12\\|X-UV\\|^2 + \\tfrac{\\delta}{2}\\|U - \\bar D(:,K)\\|^2` (0-dim)."""
        delta = 0.0 if self.delta is None else self.delta
        DK = self.Dn.index_select(1, self.K)
        return frobenius_loss(self.X, self.U, self.V) + 0.5 * delta * torch.sum((self.U - DK) ** 2)

    @staticmethod
    def stop_rule(info) -> bool:
        """Callback for :func:`torchnmf_l1.run_fit`: stop once K is stable and U is near D(:, K)."""
        return info.solver.done
