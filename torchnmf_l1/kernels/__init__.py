"""The shared, device-agnostic kernel module.

Pure tensor functions used by every solver; no solver re-implements them. They
allocate from their inputs' device and dtype, take epsilons from
``torch.finfo(dtype)``, and never synchronise with the host.
"""

from .elementwise import eps_like, normalize_columns, normalize_rows, project_nonneg_, safe_div
from .linalg import truncated_svd
from .mu import beta_mu_ratio_terms, mu_exponent, mu_update_, sparse_pattern_wt
from .nnls import hals_nnls_, hals_sweep_
from .ksparse import ksparse_nnls
from .dictionary import atom_scores, match_atoms
from .cp import cp_gram_hadamard, cp_mttkrp, cp_reconstruct
from .separable import spa
from .losses import (
    beta_divergence,
    frobenius_loss,
    is_divergence,
    kl_divergence,
    l1_loss,
    relative_error,
    weighted_l1_loss,
)
from .products import (
    data_sum,
    frobenius_norm_sq,
    gram,
    is_sparse,
    sparse_values,
    support_indices,
    wh_on_support,
    wt_x,
    x_ht,
)

__all__ = [
    "beta_divergence",
    "beta_mu_ratio_terms",
    "hals_nnls_",
    "ksparse_nnls",
    "match_atoms",
    "atom_scores",
    "cp_gram_hadamard",
    "cp_mttkrp",
    "cp_reconstruct",
    "hals_sweep_",
    "mu_exponent",
    "mu_update_",
    "data_sum",
    "eps_like",
    "frobenius_loss",
    "frobenius_norm_sq",
    "gram",
    "is_divergence",
    "is_sparse",
    "kl_divergence",
    "l1_loss",
    "normalize_columns",
    "normalize_rows",
    "project_nonneg_",
    "relative_error",
    "safe_div",
    "spa",
    "sparse_pattern_wt",
    "sparse_values",
    "support_indices",
    "truncated_svd",
    "weighted_l1_loss",
    "wh_on_support",
    "wt_x",
    "x_ht",
]
