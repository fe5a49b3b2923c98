"""Shared plumbing of the factor models: parameter resizing on ``load_state_dict``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FactorModule", "replace_parameter_", "set_factor_"]


def replace_parameter_(param: nn.Parameter, value: torch.Tensor) -> None:
    """Give ``param`` the data ``value`` (any shape) without replacing the Parameter object."""
    with torch.no_grad():
        param.data = value.detach().to(device=param.device, dtype=param.dtype).contiguous()


def set_factor_(module: nn.Module, name: str, value: torch.Tensor) -> None:
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
    else:
        replace_parameter_(getattr(module, name), value)


class FactorModule(nn.Module):
    """An ``nn.Module`` whose factor parameters take their shapes from the data they are fitted to.

    ``load_state_dict`` resizes the parameters to the loaded tensors, so that a
    state dict round trip works for a model created before its data was seen.
    """

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name, param in self._parameters.items():
            key = prefix + name
            if param is not None and key in state_dict and state_dict[key].shape != param.shape:
                replace_parameter_(param, torch.empty_like(state_dict[key], device=param.device, dtype=param.dtype))
        for name, buf in self._buffers.items():
            key = prefix + name
            if buf is not None and key in state_dict and state_dict[key].shape != buf.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=buf.device, dtype=buf.dtype)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
