"""Warning and error categories of torchnmf_l1, and the helper that points warnings at the caller.

``ConvergenceWarning`` is a subclass of ``sklearn.exceptions.ConvergenceWarning`` where
scikit-learn is installed (so that scikit-learn's own filters and ``pytest.warns`` on its
class catch ours), else of ``UserWarning``. The class is made on first use (attribute access
or the first warning), so that importing torchnmf_l1 does not import scikit-learn.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["ConvergenceWarning", "DistributedFitError", "NotFittedError", "warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


_CONVERGENCE_WARNING = None


def convergence_warning() -> type:
    """The package's ``ConvergenceWarning`` class (made once; see the module docstring)."""
    global _CONVERGENCE_WARNING
    if _CONVERGENCE_WARNING is None:
        try:
            from sklearn.exceptions import ConvergenceWarning as base
        except ImportError:  # scikit-learn is an optional extra
            base = UserWarning
        _CONVERGENCE_WARNING = type(
            "ConvergenceWarning", (base,),
            {"__doc__": "A fit stopped at ``max_iter`` before the objective met ``tol``.", "__module__": __name__},
        )
    return _CONVERGENCE_WARNING


def __getattr__(name):
    if name == "ConvergenceWarning":
        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
