r"""Multiplicative updates for the beta-divergence family (beta = 2 Frobenius, 1 KL, 0 IS, any beta).

.. math:: \min_{W, H \ge 0} D_\beta(X \mid WH) + \text{penalties}

Works on torch.sparse X without densifying it (see
:func:`torchnmf_l1.kernels.beta_mu_ratio_terms`).

References
----------
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
"""

from __future__ import annotations

from .. import kernels
from ..registry import register_solver
from .base import Solver

__all__ = ["MultiplicativeUpdates"]


@register_solver("mu", default_for=("kl", "is", "beta"))
class MultiplicativeUpdates(Solver):
    """Multiplicative updates with the monotone exponent gamma(beta); W then H each iteration.

    Options
    -------
    exponent : float or None
        Override gamma(beta) (None: the exponent that guarantees monotonicity).
    """

    losses = frozenset({"frobenius", "kl", "is", "beta"})
    options = {"exponent": None}

    def __init__(self, problem, W, H, **kwargs):
        super().__init__(problem, W, H, **kwargs)
        self.beta = problem.loss.beta
        exponent = self.config["exponent"]
        self.gamma = kernels.mu_exponent(self.beta) if exponent is None else float(exponent)
        self.data_t = problem.data.T if self.update_W else None

    def step(self) -> None:
        pen = self.problem.penalties
        if self.update_W:
            d = self.data_t
            num, den = kernels.beta_mu_ratio_terms(
                d.X, self.H.transpose(0, 1), self.W.transpose(0, 1), self.beta, d.support, d.X_t, d.perm_t
            )
            kernels.mu_update_(self.W.transpose(0, 1), num, den, self.gamma, pen.l1_W, pen.l2_W)
        if self.update_H:
            d = self.problem.data
            num, den = kernels.beta_mu_ratio_terms(d.X, self.W, self.H, self.beta, d.support, d.X_t, d.perm_t)
            kernels.mu_update_(self.H, num, den, self.gamma, pen.l1_H, pen.l2_H)
