"""The shared, device-agnostic kernel module.

Pure tensor functions used by every solver; no solver re-implements them. They
allocate from their inputs' device and dtype, take epsilons from
``torch.finfo(dtype)``, and never synchronise with the host.
"""

from .elementwise import eps_like, normalize_columns, normalize_rows, project_nonneg_, safe_div
from .linalg import truncated_svd
from .mu import beta_mu_ratio_terms, mu_exponent, mu_update_, sparse_pattern_wt
from .nnls import hals_nnls_, hals_sweep_
from .batched_nnls import nnls_implicit_vjp, nnls_lipschitz, nnls_mu_solve, nnls_mu_step, nnls_pg_solve, nnls_pg_step, nnls_stationarity
from .separable import project_omega, project_simplex, simplex_nnls, snpa, spa, vca, xray
from .weighted_median import selection_rounds, segment_layout, sort_segments, weighted_median, weighted_median_select
from .h2nmf import H2NMFClusters, h2nmf_clustering, rank2_nnls, rank2_svd, split_threshold
from .ksparse import ksparse_nnls
from .dictionary import atom_scores, match_atoms, subspace_atoms
from .cp import cp_gram_hadamard, cp_mttkrp, cp_reconstruct
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
    "atom_scores",
    "beta_divergence",
    "beta_mu_ratio_terms",
    "cp_gram_hadamard",
    "cp_mttkrp",
    "cp_reconstruct",
    "data_sum",
    "eps_like",
    "frobenius_loss",
    "frobenius_norm_sq",
    "gram",
    "h2nmf_clustering",
    "H2NMFClusters",
    "hals_nnls_",
    "hals_sweep_",
    "is_divergence",
    "is_sparse",
    "kl_divergence",
    "ksparse_nnls",
    "l1_loss",
    "match_atoms",
    "subspace_atoms",
    "mu_exponent",
    "mu_update_",
    "nnls_implicit_vjp",
    "nnls_lipschitz",
    "nnls_mu_solve",
    "nnls_mu_step",
    "nnls_pg_solve",
    "nnls_pg_step",
    "nnls_stationarity",
    "normalize_columns",
    "normalize_rows",
    "project_nonneg_",
    "project_omega",
    "project_simplex",
    "rank2_nnls",
    "rank2_svd",
    "relative_error",
    "safe_div",
    "segment_layout",
    "selection_rounds",
    "simplex_nnls",
    "snpa",
    "sort_segments",
    "spa",
    "sparse_pattern_wt",
    "sparse_values",
    "split_threshold",
    "support_indices",
    "truncated_svd",
    "vca",
    "weighted_l1_loss",
    "weighted_median",
    "weighted_median_select",
    "wh_on_support",
    "wt_x",
    "x_ht",
    "xray",
]
