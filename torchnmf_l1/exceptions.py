"""Warning and error categories of torchnmf_l1, and the helper that points warnings at the caller."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["ConvergenceWarning", "DistributedFitError", "NotFittedError", "warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ConvergenceWarning(UserWarning):
    """A fit stopped at ``max_iter`` before the objective met ``tol``."""


class NotFittedError(ValueError, AttributeError):
    """A model was used before it was fitted or given factors."""


class DistributedFitError(RuntimeError):
    """A collective failed: a peer rank died, timed out or left the process group."""


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first frame outside this package (the user's call)."""
    level = 2  # stacklevel 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
