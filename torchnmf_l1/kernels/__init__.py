"""The shared, device-agnostic kernel module: all the arithmetic of the package.

Pure tensor functions (in-place ones end in ``_``) used by every solver; no solver
re-implements them. They allocate from their inputs' device and dtype and take
epsilons from ``torch.finfo(dtype)``. The functions that an iteration calls (products,
losses, MU ratios, HALS sweeps, L1 sweeps and weighted medians, the momentum step, the
Omega projection, CP products) never read the device; the ones that build a structure
once per problem (:func:`segment_layout`, the separable selections, :func:`match_atoms`'s
assignment on the host, :func:`h2nmf_clustering`) say where they do.
"""

from .elementwise import eps_like, normalize_columns, normalize_rows, project_nonneg_, safe_div
from .linalg import fixed_point_adjoint, truncated_svd
from .mu import beta_mu_ratio_terms, l21_column_weights, mu_exponent, mu_ratio, mu_update_, sparse_pattern_wt
from .nnls import hals_nnls_, hals_sweep, hals_sweep_, least_squares_start, nnls_columns
from .momentum import MomentumState, RestartState, accelerated_update, bracketing_update, restart_update
from .batched_nnls import nnls_implicit_vjp, nnls_lipschitz, nnls_mu_start, nnls_mu_step, nnls_objective, nnls_pg_step, nnls_stationarity
from .separable import project_omega, project_simplex, simplex_nnls, snpa, spa, vca, xray
from .weighted_median import selection_rounds, segment_layout, sort_segments, weighted_median, weighted_median_select
from .l1 import dense_l1_sweep_, l1_subgradient_step_, smoothed_l1_steps_, sparse_l1_sweep_
from .h2nmf import H2NMFClusters, h2nmf_clustering, rank2_nnls, rank2_svd, split_threshold
from .ksparse import ksparse_nnls
from .weighted import (
    entry_divergence,
    weighted_hals_update_,
    weighted_loss,
    weighted_mu_ratio_terms,
    weighted_relative_error,
    weighted_residual,
    weighted_row_statistics,
    weighted_scale,
    row_gram_nnls_sweep_,
    problem_chunks,
)
from .dictionary import atom_gap, atom_scores, match_atoms, proximal_weight, subspace_atoms
from .cp import cp_balance_, cp_gram_hadamard, cp_mttkrp, cp_reconstruct
from .losses import (
    beta_divergence,
    dense_in_chunks,
    frobenius_loss,
    is_divergence,
    kl_divergence,
    column_residual_norms,
    l1_loss,
    l21_loss,
    relative_error,
    weighted_l1_loss,
)
from .products import (
    Support,
    chunk_size,
    data_sum,
    frobenius_norm_sq,
    gram,
    is_sparse,
    problem_sums,
    sparse_values,
    support_indices,
    wh_on_support,
    wt_x,
    x_ht,
)

__all__ = [
    "MomentumState",
    "Support",
    "accelerated_update",
    "RestartState",
    "restart_update",
    "bracketing_update",
    "atom_gap",
    "atom_scores",
    "beta_divergence",
    "beta_mu_ratio_terms",
    "chunk_size",
    "cp_balance_",
    "cp_gram_hadamard",
    "cp_mttkrp",
    "cp_reconstruct",
    "data_sum",
    "dense_in_chunks",
    "dense_l1_sweep_",
    "smoothed_l1_steps_",
    "l1_subgradient_step_",
    "l21_column_weights",
    "l21_loss",
    "column_residual_norms",
    "eps_like",
    "frobenius_loss",
    "frobenius_norm_sq",
    "gram",
    "h2nmf_clustering",
    "H2NMFClusters",
    "hals_nnls_",
    "hals_sweep_",
    "hals_sweep",
    "is_divergence",
    "is_sparse",
    "kl_divergence",
    "ksparse_nnls",
    "l1_loss",
    "least_squares_start",
    "match_atoms",
    "mu_exponent",
    "mu_update_",
    "mu_ratio",
    "nnls_columns",
    "nnls_implicit_vjp",
    "nnls_lipschitz",
    "nnls_mu_start",
    "nnls_mu_step",
    "nnls_objective",
    "nnls_pg_step",
    "nnls_stationarity",
    "normalize_columns",
    "normalize_rows",
    "problem_sums",
    "project_nonneg_",
    "project_omega",
    "project_simplex",
    "proximal_weight",
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
    "sparse_l1_sweep_",
    "sparse_pattern_wt",
    "sparse_values",
    "split_threshold",
    "subspace_atoms",
    "support_indices",
    "truncated_svd",
    "fixed_point_adjoint",
    "vca",
    "weighted_l1_loss",
    "entry_divergence",
    "weighted_hals_update_",
    "weighted_loss",
    "weighted_mu_ratio_terms",
    "weighted_relative_error",
    "weighted_residual",
    "weighted_scale",
    "weighted_row_statistics",
    "row_gram_nnls_sweep_",
    "problem_chunks",
    "weighted_median",
    "weighted_median_select",
    "wh_on_support",
    "wt_x",
    "x_ht",
    "xray",
]
