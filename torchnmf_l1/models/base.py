"""Shared plumbing of the factor models: the one fit path, committing factors, state-dict resizing.

Every model's ``fit`` builds its problem and starting state, then calls
:meth:`FactorModule._run_solver` (a registered solver, looked up by name, through
:func:`torchnmf_l1.fit.fit_solver`) and commits the solver's output with
:func:`set_factor_`. Models do no arithmetic of their own and never import a solver module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..fit import FitOptions, fit_solver
from ..registry import get_solver

__all__ = ["FactorModule", "replace_parameter_", "set_factor_", "check_finite_output", "check_device"]


def check_device(device) -> None:
    """A clear error for a device that is not a torch device or is not on this machine."""
    if device is None:
        return
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}: CUDA is not available on this machine; use 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def replace_parameter_(param: nn.Parameter, value: Tensor) -> None:
    """Give ``param`` the data ``value`` (any shape and dtype) without replacing the Parameter object."""
    with torch.no_grad():
        param.data = value.detach().to(device=param.device).contiguous()


def set_factor_(module: nn.Module, name: str, value: Tensor) -> None:
    """Give ``module.<name>`` the value ``value``, through ``right_inverse`` when the tensor is parametrized.

    Fixed-point solvers produce the constrained factor; a parametrized factor
    (:mod:`torchnmf_l1.parametrize`) stores an unconstrained original, so writing the
    solver's result into the computed tensor would be lost.
    """
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(module, name):
        original = getattr(module.parametrizations, name).original
        with torch.no_grad():
            setattr(module, name, value.detach().to(device=original.device, dtype=original.dtype).contiguous())
    elif name in module._parameters:
        replace_parameter_(getattr(module, name), value)
    else:
        setattr(module, name, value.detach().contiguous())


def check_finite_output(output, solver_name: str, message: str) -> None:
    """Refuse to commit non-finite factors (the model keeps its previous ones)."""
    for name, value in output.factors.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise FloatingPointError(
                    f"solver {solver_name!r} produced non-finite {name} ({message}); the model keeps its previous factors"
                )


class FactorModule(nn.Module):
    """An ``nn.Module`` whose factor parameters take their shapes from the data they are fitted to.

    ``load_state_dict`` resizes the parameters to the loaded tensors, so that a state dict
    round trip works for a model created before its data was seen; only the data's
    dimensions may differ: a tensor whose rank axis (``rank_axes``) is not the model's
    rank is refused (loading a rank-3 fit into a rank-4 model is an error).
    """

    #: name of a parameter or buffer -> the axis that holds the rank
    rank_axes: dict = {}

    def reconstruct(self) -> Tensor:
        """The reconstruction (what ``model()`` returns), detached: for evaluation, e.g.
        ``float(torch.linalg.norm(X - model.reconstruct()))`` (``model()`` itself is
        differentiable in the factors, and turning it into a float warns about autograd)."""
        with torch.no_grad():
            return self().detach()

    def _run_solver(self, family: str, solver: str, problem, state, solver_options: dict, fit_options: dict,
                    owner: str = "fit", wrap=None):
        """The one fit path: build the registered solver, run the loop, finish; nothing committed yet.

        ``wrap`` (optional) wraps the solver instance, e.g. to write checkpoints.
        Returns ``(FitResult, SolverOutput)``; raises before anything is committed.
        """
        options = FitOptions.from_kwargs(fit_options, owner=f"{type(self).__name__}.{owner}")
        solver_cls = get_solver(solver, family=family)
        with torch.no_grad():
            instance = solver_cls.create(problem, state, **solver_options)
            if wrap is not None:
                instance = wrap(instance)
            result, output = fit_solver(instance, options)
        check_finite_output(output, solver, result.message)
        return result, output

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        rank = getattr(self, "rank", None)
        for name, axis in self.rank_axes.items():
            value = state_dict.get(prefix + name)
            if rank is not None and value is not None and value.dim() > 0 and value.shape[axis] != rank:
                error_msgs.append(f"rank mismatch for {prefix + name}: the state has rank {value.shape[axis]} "
                                  f"(shape {tuple(value.shape)}), this {type(self).__name__} has rank {rank}")
                return
        # a model of dtype=None takes its data's floating dtype, hence also a loaded state's
        keep_dtype = getattr(self, "dtype", "fixed") is None
        for name, param in self._parameters.items():
            key = prefix + name
            if param is not None and key in state_dict and (state_dict[key].shape != param.shape or keep_dtype):
                dtype = state_dict[key].dtype if keep_dtype else param.dtype
                replace_parameter_(param, torch.empty_like(state_dict[key], device=param.device, dtype=dtype))
        for name, buf in self._buffers.items():
            key = prefix + name
            if buf is not None and key in state_dict and state_dict[key].shape != buf.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buf.device, dtype=buf.dtype)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

