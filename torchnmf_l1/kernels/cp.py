r"""Kernels of the canonical polyadic decomposition (CPD), computed through tensorly.

A rank-r CPD of an order-N tensor T (I_1 x ... x I_N) is
:math:`[\![A_1, \dots, A_N]\!] = \sum_{q=1}^r a_{1q} \circ \cdots \circ a_{Nq}`. The HALS
update of factor n needs

.. math::
    M_n = T_{(n)} (A_N \odot \cdots \odot A_{n+1} \odot A_{n-1} \odot \cdots \odot A_1)
    \quad\text{(MTTKRP, } I_n \times r), \qquad
    B_n = \mathop{\ast}_{m \ne n} A_m^T A_m \quad (r \times r),

the unfolding times the Khatri-Rao product and the Hadamard product of the other
factors' Grams. tensorly computes the MTTKRP with its PyTorch backend, selected
locally with ``tl.backend_context("pytorch")`` (never globally), so the tensors stay
on their device (CPU or CUDA) and dtype.

References
----------
T. G. Kolda and B. W. Bader, "Tensor decompositions and applications", SIAM Review
51(3), 2009.
J. Kossaifi, Y. Panagakis, A. Anandkumar and M. Pantic, "TensorLy: tensor learning in
Python", JMLR 20(26), 2019.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["cp_mttkrp", "cp_gram_hadamard", "cp_reconstruct"]


def cp_mttkrp(T: Tensor, factors: Sequence[Tensor], mode: int) -> Tensor:
    """``unfold(T, mode) @ khatri_rao(factors except mode)``, shape (I_mode, r), via tensorly."""
    import tensorly as tl
    from tensorly.cp_tensor import unfolding_dot_khatri_rao

    with tl.backend_context("pytorch"):
        return unfolding_dot_khatri_rao(T, (None, list(factors)), mode)


def cp_gram_hadamard(factors: Sequence[Tensor], mode: int) -> Tensor:
    """Hadamard product of ``A_m^T A_m`` over m != mode (r x r)."""
    r = factors[0].shape[1]
    B = torch.ones(r, r, device=factors[0].device, dtype=factors[0].dtype)
    for m, A in enumerate(factors):
        if m != mode:
            B = B * (A.transpose(0, 1) @ A)
    return B


def cp_reconstruct(factors: Sequence[Tensor]) -> Tensor:
    """The full tensor :math:`[\\![A_1, \\dots, A_N]\\!]` (unit weights), via tensorly."""
    import tensorly as tl

    with tl.backend_context("pytorch"):
        return tl.cp_to_tensor((None, list(factors)))
