r"""Multiplicative updates for the beta-divergence family (beta = 2 Frobenius, 1 KL, 0 IS, any beta).

.. math:: \min_{W, H \ge 0} D_\beta(X \mid WH) + \text{penalties}

One problem or a batch; works on torch.sparse X without densifying it (see
:func:`torchnmf_l1.kernels.beta_mu_ratio_terms`). With entry weights or missing entries,
the weighted MU (:func:`torchnmf_l1.kernels.weighted_mu_ratio_terms`), dense or on the
observed entries only. The step never reads the device.

References
----------
D. D. Lee and H. S. Seung, "Algorithms for non-negative matrix factorization", NIPS 2001.
C. Févotte and J. Idier, "Algorithms for nonnegative matrix factorization with the
beta-divergence", Neural Computation 23(9), 2011.
"""

from __future__ import annotations

from .. import kernels
from ..params import Number, OneOf, Param
from ..registry import register_solver
from .base import NMFSolver

__all__ = ["MultiplicativeUpdates"]


@register_solver("mu", family="nmf", default_for=("kl", "is", "beta"))
class MultiplicativeUpdates(NMFSolver):
    """Multiplicative updates with the monotone exponent gamma(beta); W then H each iteration."""

    losses = frozenset({"frobenius", "kl", "is", "beta"})
    options = {
        "exponent": Param(
            None, OneOf(None, Number(0, closed="neither")),
            "override gamma(beta) (None: the exponent that guarantees a monotone objective)",
        ),
    }

    supports_weights = True

    def __init__(self, problem, state, **options):
        super().__init__(problem, state, **options)
        self.beta = problem.loss.beta
        exponent = self.config["exponent"]
        self.gamma = kernels.mu_exponent(self.beta) if exponent is None else float(exponent)
        self.data_t = problem.data.T if self.update_W else None
        weights = problem.weights
        self.weights_t = None if weights is None or not self.update_W else (
            weights.T.values if weights.sparse else weights.X.mT
        )

    def _terms(self, d, W, H, weights):
        if weights is None:
            return kernels.beta_mu_ratio_terms(d.X, W, H, self.beta, d.support, d.X_t, d.perm_t)
        return kernels.weighted_mu_ratio_terms(d.X, W, H, weights, self.beta, d.support, d.X_t, d.perm_t)

    def step(self) -> None:
        pen = self.problem.penalties
        if self.update_W:
            d = self.data_t
            num, den = self._terms(d, self.H.mT, self.W.mT, self.weights_t)
            kernels.mu_update_(self.W.mT, num, den, self.gamma, pen.l1_W, pen.l2_W, active=self.active)
        if self.update_H:
            d = self.problem.data
            num, den = self._terms(d, self.W, self.H, self.problem.weight_values)
            kernels.mu_update_(self.H, num, den, self.gamma, pen.l1_H, pen.l2_H, active=self.active)
