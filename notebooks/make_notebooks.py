"""Write the notebooks of this folder (run: python notebooks/make_notebooks.py).

The notebooks are narrative: they import torchnmf_l1 and define no algorithm. Each reads
TORCHNMF_L1_SMALL=1 (set by the test suite) to shrink its problem. Their metadata lists the
public names they need (``torchnmf_l1.requires``) and the losses (``requires_losses``), so
that the test that executes them skips, with a reason, a notebook whose model is not in
this version of the package.
"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

SETUP = """\
import os
from pathlib import Path

import numpy as np
import torch
import matplotlib.pyplot as plt

import torchnmf_l1

SMALL = os.environ.get("TORCHNMF_L1_SMALL") == "1"   # tiny sizes in the test suite
DATA = Path.cwd().resolve().parent.parent / "shared" / "data"   # ../shared/data from the repo root
print(torchnmf_l1.__version__, "small" if SMALL else "full", "data:", DATA.exists())"""


def notebook(name, title, cells, requires=("NMF",), requires_losses=()):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["torchnmf_l1"] = {"requires": list(requires), "requires_losses": list(requires_losses)}
    nb.cells = [new_markdown_cell(f"# {title}"), new_code_cell(SETUP)]
    for kind, text in cells:
        nb.cells.append(new_markdown_cell(text) if kind == "md" else new_code_cell(text))
    for index, cell in enumerate(nb.cells):
        cell.id = f"{name[:3]}cell{index:02d}"  # stable ids: rerunning the generator changes nothing
    nbformat.write(nb, HERE / f"{name}.ipynb")


notebook("01_quickstart", "Quickstart: NMF on a planted problem", [
    ("md", "X (m x n) ~ W (m x r) H (r x n) with W, H >= 0. We plant a rank-5 factorization and recover it."),
    ("code", """\
m, n, r = (40, 60, 5) if SMALL else (300, 500, 10)
g = torch.Generator().manual_seed(0)
X = torch.rand(m, r, generator=g, dtype=torch.float64) @ torch.rand(r, n, generator=g, dtype=torch.float64)
model = torchnmf_l1.NMF(r, solver="hals", seed=0, dtype=torch.float64)
result = model.fit(X, max_iter=100 if SMALL else 500, tol=1e-8)
rel = float(torch.linalg.norm(X - model.reconstruct()) / torch.linalg.norm(X))
print(result, f"relative error {rel:.2e}")
assert rel < 0.05"""),
    ("md", "Solvers are looked up by name in a registry; every solver shares one fit loop and returns a `FitResult`."),
    ("code", """\
print("solvers:", torchnmf_l1.available_solvers(None), "inits:", torchnmf_l1.available_inits())
fig, ax = plt.subplots(figsize=(4, 3))
for solver in ["hals", "mu"]:
    res = torchnmf_l1.NMF(r, solver=solver, seed=0, dtype=torch.float64).fit(X, max_iter=60 if SMALL else 300, tol=0)
    ax.semilogy(res.iterations, res.objective, label=solver)
ax.set_xlabel("iteration"); ax.set_ylabel("objective"); ax.legend(); plt.show()"""),
    ("md", "The model is a `torch.nn.Module`: `transform` solves H for new columns with W fixed, and the reconstruction is differentiable."),
    ("code", """\
H_new = model.transform(X[:, :10])
print(H_new.shape, float(torch.linalg.norm(X[:, :10] - model.W @ H_new) / torch.linalg.norm(X[:, :10])))"""),
])

notebook("02_hyperspectral_unmixing", "Hyperspectral unmixing: Urban and Moffett", [
    ("md", "Columns are pixels, rows are bands: X ~ W H with W the endmember spectra and H the abundances. "
           "Urban (162 bands, 77 x 77 pixels in column-major order) and Moffett (159 bands, 50 x 50) are read from "
           "`../shared/data/` when present; a synthetic scene otherwise."),
    ("code", """\
from torchnmf_l1.io import load_data, matrix_to_cube
from torchnmf_l1.io import plots

scenes = []
for file, key, shape, rank in [("urban_undersampled4.mat", "M", (77, 77), 6), ("Moffet.mat", "X", (50, 50), 3)]:
    if (DATA / file).exists():
        ds = load_data(DATA / file, key=key, image_shape=shape, order="F")
        scenes.append((file, np.asarray(ds.X, dtype=np.float64), ds.image_shape, ds.order, rank))
if not scenes:
    rng = np.random.default_rng(0)
    W0, H0 = rng.random((50, 4)), rng.dirichlet(np.ones(4), size=30 * 30).T
    scenes.append(("synthetic", W0 @ H0, (30, 30), "C", 4))
if SMALL:   # a 16 x 16 corner of each scene
    small = []
    for name, X, shape, order, rank in scenes:
        cube = matrix_to_cube(X, shape, order=order)[:, :16, :16]
        small.append((name, cube.reshape(cube.shape[0], -1), (16, 16), "C", rank))
    scenes = small
[(name, X.shape) for name, X, *_ in scenes]"""),
    ("code", """\
import tempfile
out = Path(tempfile.mkdtemp())
for name, X, shape, order, rank in scenes:
    model = torchnmf_l1.NMF(rank, solver="hals", seed=0, dtype=torch.float64)
    result = model.fit(X, max_iter=30 if SMALL else 500, tol=1e-6)
    W, H = model.W.detach().numpy(), model.H.detach().numpy()
    print(name, result, "relative error", np.linalg.norm(X - W @ H) / np.linalg.norm(X))
    if hasattr(torchnmf_l1, "SeparableNMF"):   # pure pixels by successive projection, for comparison
        sep = torchnmf_l1.SeparableNMF(rank, solver="spa")
        sep.fit(X)
        print("  SPA picks pixels", sep.indices)
    plots.plot_spectra(W, out / f"{name}_spectra.png")
    plots.plot_abundances(H, shape, out / f"{name}_abundances.png", order=order)
    fig, axes = plt.subplots(1, rank, figsize=(2 * rank, 2))
    for k, a in enumerate(matrix_to_cube(H, shape, order=order)):
        axes[k].imshow(a); axes[k].axis("off")
    plt.show()"""),
])

notebook("03_faces_cbcl", "Faces: a parts-based basis of CBCL", [
    ("md", "Each column of CBCL is a 19 x 19 face. NMF (Lee & Seung 1999) learns a basis of localized parts."),
    ("code", """\
from torchnmf_l1.io import load_data, matrix_to_cube
if (DATA / "CBCL.mat").exists():
    ds = load_data(DATA / "CBCL.mat", key="X", image_shape=(19, 19), order="F")
    X = np.asarray(ds.X, dtype=np.float64)
else:   # synthetic "faces": sums of random blobs
    rng = np.random.default_rng(0)
    parts = np.stack([np.exp(-((np.arange(19)[:, None] - rng.integers(0, 19)) ** 2 + (np.arange(19)[None] - rng.integers(0, 19)) ** 2) / 8).ravel(order="F") for _ in range(16)], 1)
    X = parts @ rng.random((16, 500))
if SMALL:
    X = X[:, :200]
rank = 9 if SMALL else 49
model = torchnmf_l1.NMF(rank, loss="kl", solver="mu", init="nndsvdar", seed=0, dtype=torch.float64)
result = model.fit(X, max_iter=30 if SMALL else 300, tol=1e-6)
W = model.W.detach().numpy()
print(result, "fraction of (near) zero entries in W:", float(np.mean(W < 1e-3 * W.max())))"""),
    ("code", """\
side = int(np.ceil(np.sqrt(rank)))
fig, axes = plt.subplots(side, side, figsize=(side, side))
for k, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if k < rank:
        ax.imshow(W[:, k].reshape(19, 19, order="F"), cmap="gray_r")
plt.show()"""),
])

notebook("04_l1_robustness", "L1 robustness: NMF under salt-and-pepper noise", [
    ("md", "Frobenius NMF chases outliers; the L1 loss ||X - WH||_1 ignores sparse large errors. "
           "We corrupt a planted low-rank matrix with salt-and-pepper noise and compare the recovered clean matrix."),
    ("code", """\
m, n, r = (30, 40, 3) if SMALL else (200, 300, 5)
rng = np.random.default_rng(0)
clean = rng.random((m, r)) @ rng.random((r, n))
X = clean.copy()
mask = rng.random(X.shape) < 0.05
X[mask] = rng.choice([0.0, 5.0 * clean.max()], size=mask.sum())
errors = {}
for loss, solver in [("frobenius", "hals"), ("l1", "scd")]:
    model = torchnmf_l1.NMF(r, loss=loss, solver=solver, seed=0, dtype=torch.float64)
    model.fit(X, max_iter=30 if SMALL else 300, tol=1e-6)
    WH = model().detach().numpy()
    errors[loss] = np.linalg.norm(clean - WH) / np.linalg.norm(clean)
errors"""),
    ("code", """\
plt.bar(list(errors), list(errors.values())); plt.ylabel("||clean - WH|| / ||clean||"); plt.show()"""),
], requires_losses=("l1",))

notebook("05_topics", "Topics: KL-NMF on a document collection", [
    ("md", "Words x documents counts; KL-NMF (Lee & Seung 2001) with multiplicative updates on the sparse matrix, "
           "never densified. The classic collection is read from `../shared/data/` when present."),
    ("code", """\
import scipy.sparse
from torchnmf_l1.io import load_data
from torchnmf_l1.io.plots import top_words
if (DATA / "classic.mat").exists():
    X = load_data(DATA / "classic.mat", key="X").X.T.tocsr().astype(np.float64)   # words x documents
    labels = None
else:
    X = scipy.sparse.random(2000, 800, density=0.01, random_state=0, format="csr") * 5
if SMALL:
    X = X[:, :300]
    X = X[np.asarray(X.sum(1)).ravel() > 0]
rank = 4
model = torchnmf_l1.NMF(rank, loss="kl", solver="mu", seed=0, dtype=torch.float64)
result = model.fit(X, max_iter=20 if SMALL else 200, tol=1e-6)
print(X.shape, X.nnz, result)
for k, words in enumerate(top_words(model.W.detach().numpy(), n_words=8)):
    print(f"topic {k + 1}:", " ".join(words))"""),
])

notebook("06_differentiable_nmf", 'Differentiable NMF: NNLS layers and autograd-trained factors', [
    ('md', """\
This notebook runs the worked examples of `experiments/nmf_layer_examples.py` with small settings
(the full run is `python experiments/nmf_layer_examples.py`, results in `experiments/results/`).
It defines no algorithm: everything comes from `torchnmf_l1`.

* `NNLSLayer(in_features=m, rank=r, backward="implicit" | "unrolled")` maps x (batch, m) to
  h = argmin_{h >= 0} ½||x - W h||² + l1·sum(h), differentiable in x and W.
* `torchnmf_l1.parametrize` keeps factors nonnegative under any `torch.optim` optimiser
  (softplus / square / exp parametrizations, or projection after each step)."""),
    ('code', """\
import sys
from pathlib import Path

root = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "torchnmf_l1").is_dir())
sys.path.insert(0, str(root))

from torchnmf_l1 import NNLSLayer
from experiments.nmf_layer_examples import digits_classifier, urban_unmixing

torch.set_num_threads(2)"""),
    ('md', """\
## The layer in three lines

Codes are nonnegative, and the implicit backward (differentiating the KKT conditions on the free
set {h > 0}) gives the same gradients as autograd through the iterations once they have converged (3000 FISTA
iterations here: random uniform columns are strongly correlated, so convergence is slow)."""),
    ('code', """\
layer = NNLSLayer(in_features=20, rank=5, seed=0, dtype=torch.float64, n_iter=3000)
x = torch.rand(8, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
h = layer(x)
print(h.shape, bool((h >= 0).all()), f"zero codes: {int((h == 0).sum())}")

grads = {}
for mode in ("implicit", "unrolled"):
    layer.backward = mode
    x.grad = None
    layer(x).square().sum().backward()
    grads[mode] = x.grad.clone()
print("max |implicit - unrolled| gradient:", float((grads["implicit"] - grads["unrolled"]).abs().max()))"""),
    ('md', """\
## A digits classifier whose first layer is an NNLS layer

Both variants start from the dictionary of a HALS fit on the training images. *Frozen* trains only
the linear head on the NMF codes; *end to end* also trains the dictionary through the implicit backward
(projected onto W >= 0 after each Adam step)."""),
    ('code', """\
digits = digits_classifier(rank=16, n_iter=20, steps=40, nmf_iter=50)
print(f"test accuracy: frozen NMF features {digits['frozen_accuracy']:.3f}, "
      f"end-to-end NNLS layer {digits['end_to_end_accuracy']:.3f}")"""),
    ('md', """\
## Unmixing Urban with a layer trained by autograd

The fixed-point solver (accelerated HALS) against an NNLS layer whose dictionary (the endmembers)
is learned by Adam through the implicit backward, and against `train_autograd` on an NMF's W and H
(softplus parametrization). Generated data replaces the Urban file when it is absent."""),
    ('code', """\
urban = urban_unmixing(rank=6, pixel_step=16, hals_iter=30, steps=30, n_iter=20)
print(f"data: {urban['data']}, shape {urban['shape']}")
for key in ("hals_relative_error", "layer_relative_error", "train_autograd_relative_error"):
    print(f"{key:32s} {urban[key]:.4f}")
print(f"mean angle between the layer's and HALS's endmembers: {urban['layer_vs_hals_mean_angle_deg']:.1f} deg")"""),
], requires=("NNLSLayer", "NMF"))
