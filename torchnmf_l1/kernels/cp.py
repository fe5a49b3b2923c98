r"""Kernels of the canonical polyadic decomposition (CPD), one tensor or a batch.

A rank-r CPD of an order-N tensor T (I_1 x ... x I_N) is
:math:`[\![A_1, \dots, A_N]\!] = \sum_{q=1}^r a_{1q} \circ \cdots \circ a_{Nq}`. The HALS
update of factor n needs

.. math::
    M_n = T_{(n)} (A_N \odot \cdots \odot A_{n+1} \odot A_{n-1} \odot \cdots \odot A_1)
    \quad\text{(MTTKRP, } I_n \times r), \qquad
    B_n = \mathop{\ast}_{m \ne n} A_m^T A_m \quad (r \times r),

the unfolding times the Khatri-Rao product and the Hadamard product of the other
factors' Grams. The MTTKRP is one ``torch.einsum`` contraction (the Khatri-Rao product is
never formed; measured as fast as tensorly's ``unfolding_dot_khatri_rao`` on
40 x 50 x 60 and 15^4 tensors), so it runs on any device and dtype and takes a leading
batch dimension: T of shape (B, I_1, ..., I_N) with factors (B, I_n, r).

References
----------
T. G. Kolda and B. W. Bader, "Tensor decompositions and applications", SIAM Review
51(3), 2009.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["cp_mttkrp", "cp_gram_hadamard", "cp_reconstruct", "cp_balance_"]

_MODES = "abcdefghijklmnopqrstuvwx"  # 'y' is the batch, 'z' the rank


def _batched(T: Tensor, factors: Sequence[Tensor]) -> bool:
    return factors[0].dim() == 3


def cp_mttkrp(T: Tensor, factors: Sequence[Tensor], mode: int) -> Tensor:
    """``unfold(T, mode) @ khatri_rao(factors except mode)``: (I_mode, r), or (B, I_mode, r)."""
    batched = _batched(T, factors)
    order = len(factors)
    lead = "y" if batched else ""
    letters = _MODES[:order]
    operands = [f"{lead}{letters[m]}z" for m in range(order) if m != mode]
    spec = f"{lead}{letters}," + ",".join(operands) + f"->{lead}{letters[mode]}z"
    return torch.einsum(spec, T, *[F for m, F in enumerate(factors) if m != mode])


def cp_gram_hadamard(factors: Sequence[Tensor], mode: int) -> Tensor:
    """Hadamard product of ``A_m^T A_m`` over m != mode: (r, r), or (B, r, r)."""
    B = None
    for m, A in enumerate(factors):
        if m != mode:
            G = A.mT @ A
            B = G if B is None else B * G
    if B is None:  # an order-1 "tensor": no other factor
        r = factors[0].shape[-1]
        return factors[0].new_ones(factors[0].shape[:-2] + (r, r))
    return B


def cp_reconstruct(factors: Sequence[Tensor]) -> Tensor:
    """The full tensor :math:`[\\![A_1, \\dots, A_N]\\!]` (unit weights), batched when the factors are."""
    batched = factors[0].dim() == 3
    lead = "y" if batched else ""
    letters = _MODES[: len(factors)]
    spec = ",".join(f"{lead}{c}z" for c in letters) + f"->{lead}{letters}"
    return torch.einsum(spec, *factors)


def cp_balance_(factors: Sequence[Tensor], modes: Sequence[int] | None = None, where: Tensor | None = None) -> None:
    """Rescale the columns of the factors of ``modes`` (all by default), in place, so that
    component q has the same norm in each of them (the geometric mean of its norms).
    ``where`` (bool, broadcastable to the norms' shape (..., 1, r)): balance only there.
    Also the balancing of an NMF (W and H^T as the two factors).

    The CP tensor is unchanged; without it, the norms of the factors drift apart by the
    scale freedom of the model (10^16 between modes after 40 HALS iterations on a
    6 x 7 x 8 tensor), which in float32 overflows, underflows or loses the HALS updates
    to round-off. The mean is taken of the logarithms, so the norms' product never
    overflows; a component that is zero in some mode is left as it is.
    """
    modes = list(range(len(factors))) if modes is None else list(modes)
    if len(modes) < 2:
        return
    norms = torch.stack([torch.linalg.vector_norm(factors[m], dim=-2, keepdim=True) for m in modes])
    positive = (norms > 0).all(dim=0)
    if where is not None:
        positive = positive & where
    # log 1 = 0 where a component is left as it is: its scales are exp(0) = 1
    logs = torch.where(positive, norms, 1.0).log()
    scales = torch.exp(logs.mean(dim=0) - logs)  # the geometric mean over each factor's norm
    for m, scale in zip(modes, scales.unbind(0)):
        factors[m].mul_(scale)
