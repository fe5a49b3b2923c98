"""Warning and error categories of torchnmf_l1."""

__all__ = ["ConvergenceWarning", "NotFittedError"]


class ConvergenceWarning(UserWarning):
    """A fit stopped at ``max_iter`` before the objective met ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before it was fitted or given factors."""
