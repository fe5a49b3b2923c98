"""Write the notebooks of this folder (run: python notebooks/make_notebooks.py [--execute]).

``--execute`` also runs each notebook at full size (the data of ../shared/data when
present) and stores its outputs, so that a reader sees the figures without running it;
about ten seconds each on two CPU cores. The test suite checks that the stored cells are
the generator's and executes each notebook again at small size.

The notebooks are narrative: they import torchnmf_l1 and define no algorithm. Each reads
TORCHNMF_L1_SMALL=1 (set by the test suite) to shrink its problem. Their metadata lists the
public names they need (``torchnmf_l1.requires``) and the losses (``requires_losses``), so
that the test that executes them skips, with a reason, a notebook whose model is not in
this version of the package.
"""

import os
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
EXECUTE = "--execute" in sys.argv[1:]
if EXECUTE:
    os.environ.pop("TORCHNMF_L1_SMALL", None)  # the stored outputs are of the full-size run

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
    if EXECUTE:
        import nbclient

        nbclient.NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
        for cell in nb.cells:
            cell.pop("execution", None)  # no timestamps: rerunning changes only what the results change
            for output in cell.get("outputs", []):
                output.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, HERE / f"{name}.ipynb")


SHOW = '''\
from IPython.display import Image, display
import tempfile
FIGURES = Path(tempfile.mkdtemp())   # the package's figures are PNG files: shown from there'''

notebook("01_quickstart", "Quickstart: NMF on a planted problem", [
    ("md", "X (m x n) ~ W (m x r) H (r x n) with W, H >= 0. We plant an exact factorization of rank r = 10 "
           "(300 x 500; r = 5 and 40 x 60 in the test suite's small run) and recover it."),
    ("code", """\
m, n, r = (40, 60, 5) if SMALL else (300, 500, 10)
g = torch.Generator().manual_seed(0)
X = torch.rand(m, r, generator=g, dtype=torch.float64) @ torch.rand(r, n, generator=g, dtype=torch.float64)
model = torchnmf_l1.NMF(r, solver="hals", seed=0, dtype=torch.float64)
result = model.fit(X, max_iter=100 if SMALL else 500, tol=0)   # tol=0: a fixed budget of iterations
rel = float(torch.linalg.norm(X - model.reconstruct()) / torch.linalg.norm(X))
print(f"rank {r}, X {m} x {n}:", result, f"relative error {rel:.2e}")
assert rel < 0.05"""),
    ("md", "Solvers are looked up by name in a registry; every solver shares one fit loop and returns a `FitResult` "
           "with the objective at each check."),
    ("code", """\
print("solvers:", torchnmf_l1.available_solvers(None), "inits:", torchnmf_l1.available_inits())
fig, ax = plt.subplots(figsize=(4.5, 3))
for solver in ["hals", "mu"]:
    res = torchnmf_l1.NMF(r, solver=solver, seed=0, dtype=torch.float64).fit(X, max_iter=60 if SMALL else 300, tol=0)
    ax.semilogy(res.iterations, res.objective, label=solver)
ax.set_xlabel("iteration"); ax.set_ylabel("0.5 ||X - WH||_F^2"); ax.set_title(f"rank {r}: HALS against MU")
ax.legend(); plt.show()"""),
    ("md", "The model is a `torch.nn.Module`: `transform` solves H for new columns with W fixed, `model()` is the "
           "reconstruction W H, differentiable in the factors, and `model.reconstruct()` the same, detached."),
    ("code", """\
H_new = model.transform(X[:, :10])
print(H_new.shape, float(torch.linalg.norm(X[:, :10] - model.W.detach() @ H_new) / torch.linalg.norm(X[:, :10])))"""),
])

notebook("02_hyperspectral_unmixing", "Hyperspectral unmixing: Urban and Moffett", [
    ("md", "Columns are pixels, rows are bands: X ~ W H with W the endmember spectra and H the abundances. "
           "Urban (162 bands, 77 x 77 pixels in column-major order) and Moffett (159 bands, 50 x 50) are read from "
           "`../shared/data/` when present; a synthetic scene otherwise."),
    ("code", SHOW + """
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
    ("md", "For each scene: HALS, then the spectra it computes, each scaled to a maximum of 1 (NMF leaves the scale "
           "to H), with the pure pixels picked by SPA (separable NMF) dashed for comparison; and the abundance maps, "
           "H scaled the other way so that W H is unchanged, on one color scale."),
    ("code", """\
for name, X, shape, order, rank in scenes:
    model = torchnmf_l1.NMF(rank, solver="hals", seed=0, dtype=torch.float64)
    result = model.fit(X, max_iter=30 if SMALL else 500, tol=0)
    W, H = model.W.detach().numpy(), model.H.detach().numpy()
    print(name, result, "relative error", np.linalg.norm(X - W @ H) / np.linalg.norm(X))
    sep = torchnmf_l1.SeparableNMF(rank, solver="spa")
    sep.fit(X)
    print("  SPA picks pixels", sep.indices)
    W, H = plots.normalise_endmembers(W, H)
    display(Image(filename=plots.plot_spectra(W, FIGURES / f"{name}_spectra.png", reference=sep.W.detach().numpy(),
                                              title=f"{name}: HALS endmembers")))
    display(Image(filename=plots.plot_abundances(H, shape, FIGURES / f"{name}_abundances.png", order=order,
                                                 title=f"{name}: abundances")))"""),
    ("md", "Low-rank sparse component analysis (Cohen & Gillis): every pixel a mixture of at most k = 2 materials. "
           "`LRSCA` alternates exact 2-sparse coding of every pixel with an NNLS update of the spectra, from 10 "
           "starts at once; its error sits between NMF's (no sparsity) and separable NMF's. "
           "`identifiability()` checks the paper's sufficient uniqueness condition on the fit: with r = 6 and "
           "k = 2 no data can meet it (at most 6 of the 7 points needed per hyperplane can have spark 6)."),
    ("code", """\
for name, X, shape, order, rank in scenes:
    sparse = torchnmf_l1.LRSCA(rank, k=2, n_init=3 if SMALL else 10, seed=0, dtype=torch.float64)
    sparse.fit(X, max_iter=30 if SMALL else 500)
    W, H = sparse.W.detach().numpy(), sparse.H.detach().numpy()
    print(name, "LRSCA k = 2: relative error", np.linalg.norm(X - W @ H) / np.linalg.norm(X),
          "| nonzeros per pixel <=", int((H != 0).sum(0).max()))
    print("  identifiability condition met:", sparse.identifiability().condition_met)
    W, H = plots.normalise_endmembers(W, H)
    display(Image(filename=plots.plot_abundances(H, shape, FIGURES / f"{name}_lrsca_abundances.png", order=order,
                                                 title=f"{name}: 2-sparse abundances (LRSCA)")))"""),
], requires=("NMF", "SeparableNMF", "LRSCA"))

notebook("03_faces_cbcl", "Faces: a parts-based basis of CBCL", [
    ("md", "Each column of CBCL is a 19 x 19 face. NMF (Lee & Seung 1999) learns a basis of localized parts: "
           "every face is a nonnegative sum of them."),
    ("code", """\
from torchnmf_l1.io import load_data
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
result = model.fit(X, max_iter=30 if SMALL else 300, tol=0)
W, WH = model.W.detach().numpy(), model.reconstruct().numpy()
print(result, "fraction of (near) zero entries in W:", float(np.mean(W < 1e-3 * W.max())))"""),
    ("md", "The basis: each column of W as a 19 x 19 image (dark = large)."),
    ("code", """\
side = int(np.ceil(np.sqrt(rank)))
fig, axes = plt.subplots(side, side, figsize=(side, side))
for k, ax in enumerate(axes.ravel()):
    ax.axis("off")
    if k < rank:
        ax.imshow(W[:, k].reshape(19, 19, order="F"), cmap="gray_r")
fig.suptitle(f"the {rank} basis images (columns of W)"); plt.show()"""),
    ("md", "Eight faces (top) and their reconstructions W H (bottom), on the same gray scale."),
    ("code", """\
faces = np.linspace(0, X.shape[1] - 1, 8).astype(int)
fig, axes = plt.subplots(2, 8, figsize=(8, 2.3))
for i, j in enumerate(faces):
    for row, (M, what) in enumerate([(X, "original"), (WH, "W H")]):
        axes[row, i].imshow(M[:, j].reshape(19, 19, order="F"), cmap="gray", vmin=0, vmax=X.max())
        axes[row, i].axis("off")
    axes[0, i].set_title(f"face {j}", fontsize=7)
axes[0, 0].text(-4, 9, "original", rotation=90, va="center", fontsize=8)
axes[1, 0].text(-4, 9, "W H", rotation=90, va="center", fontsize=8)
print("relative error of the reconstructions shown:", np.linalg.norm(X[:, faces] - WH[:, faces]) / np.linalg.norm(X[:, faces]))
plt.show()"""),
])

notebook("04_l1_robustness", "L1 robustness: NMF under salt-and-pepper noise", [
    ("md", "Frobenius NMF chases outliers; the L1 loss ||X - WH||_1 ignores sparse large errors. "
           "We corrupt a planted low-rank matrix (200 x 300, rank 5) with 5 % salt-and-pepper noise and compare the "
           "recovered clean matrix (each fit takes a few seconds on two CPU cores)."),
    ("code", """\
m, n, r = (30, 40, 3) if SMALL else (200, 300, 5)
rng = np.random.default_rng(0)
clean = rng.random((m, r)) @ rng.random((r, n))
X = clean.copy()
mask = rng.random(X.shape) < 0.05
X[mask] = rng.choice([0.0, 5.0 * clean.max()], size=mask.sum())
errors, fits = {}, {}
for loss, solver in [("frobenius", "hals"), ("l1", "scd")]:
    model = torchnmf_l1.NMF(r, loss=loss, solver=solver, seed=0, dtype=torch.float64)
    result = model.fit(X, max_iter=30 if SMALL else 200, tol=1e-6, warn=False)
    fits[loss] = model.reconstruct().numpy()
    errors[loss] = np.linalg.norm(clean - fits[loss]) / np.linalg.norm(clean)
    print(f"{loss:10s} {result}  ||clean - WH|| / ||clean|| = {errors[loss]:.4f}")"""),
    ("md", "A 60 x 80 corner of the clean matrix, of the corrupted one, and of the two fits, on one color scale "
           "(the salt is clipped); the errors are of the whole matrix."),
    ("code", """\
fig, axes = plt.subplots(1, 4, figsize=(11, 2.8))
panels = [(clean, "clean"), (X, "corrupted (5 % salt and pepper)"),
          (fits["frobenius"], f"Frobenius NMF: error {errors['frobenius']:.3f}"), (fits["l1"], f"L1-NMF: error {errors['l1']:.3f}")]
for ax, (M, title) in zip(axes, panels):
    image = ax.imshow(M[:60, :80], cmap="viridis", vmin=0, vmax=clean.max(), aspect="auto", interpolation="nearest")
    ax.set_title(title, fontsize=8); ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(image, ax=axes, fraction=0.02); plt.show()"""),
], requires_losses=("l1",))

notebook("05_topics", "Topics: KL-NMF on a document collection", [
    ("md", "Words x documents counts; KL-NMF (Lee & Seung 2001) with multiplicative updates on the sparse matrix, "
           "never densified. The classic collection (7094 documents of 4 classes, 41681 words) is read from "
           "`../shared/data/` when present; it has no vocabulary, so words are shown by their index. Each topic is "
           "labelled by the class most of its documents (those whose largest code is that topic) belong to."),
    ("code", SHOW + """
import scipy.sparse
from torchnmf_l1.io import load_data
from torchnmf_l1.io import plots
if (DATA / "classic.mat").exists():
    ds = load_data(DATA / "classic.mat", key="X")
    X = ds.X.T.tocsr().astype(np.float64)   # words x documents
    import scipy.io
    classes = scipy.io.loadmat(DATA / "classic.mat", variable_names=["classid"])["classid"].ravel()
    source = "classic"
else:
    X = scipy.sparse.random(2000, 800, density=0.01, random_state=0, format="csr") * 5
    classes, source = None, "random sparse counts"
if SMALL:
    X, classes = X[:, :300], None if classes is None else classes[:300]
keep = np.asarray(X.sum(1)).ravel() > 0
X = X[keep]
vocabulary = [f"word {i}" for i in np.flatnonzero(keep)]
rank = 4
model = torchnmf_l1.NMF(rank, loss="kl", solver="mu", seed=0, dtype=torch.float64)
result = model.fit(X, max_iter=20 if SMALL else 200, tol=0)
print(source, X.shape, X.nnz, result)"""),
    ("code", """\
W, H = model.W.detach().numpy(), model.H.detach().numpy()
topic_of_document = H.argmax(axis=0)
labels = []
for k in range(rank):
    members = classes[topic_of_document == k] if classes is not None else np.array([])
    if members.size:
        values, counts = np.unique(members, return_counts=True)
        labels.append(f"topic {k + 1}: class {values[counts.argmax()]} ({counts.max() / members.size:.0%} of {members.size} docs)")
    else:
        labels.append(f"topic {k + 1}")
used = "classes " + ", ".join(map(str, np.unique(classes))) if classes is not None else "no classes"
display(Image(filename=plots.plot_top_words(W, FIGURES / "topics.png", vocabulary=vocabulary, n_words=10, labels=labels,
                                            title=f"{source}: {X.shape[1]} documents, {used}; KL-NMF rank {rank}")))"""),
])

notebook("06_differentiable_nmf", 'Differentiable NMF: NNLS layers and autograd-trained factors', [
    ('md', """\
Everything here comes from `torchnmf_l1` (the full-size runs are `python experiments/nmf_layer_examples.py`,
results in `experiments/results/`).

* `NNLSLayer(in_features=m, rank=r, backward="implicit" | "unrolled")` maps x (batch, m) to
  h = argmin_{h >= 0} ½||x - W h||² + l1·sum(h), differentiable in x and W.
* `torchnmf_l1.parametrize` keeps factors nonnegative under any `torch.optim` optimiser
  (softplus / square / exp parametrizations, or projection after each step)."""),
    ('code', """\
from torchnmf_l1 import NMF, NNLSLayer
from torchnmf_l1.parametrize import positive, train_autograd
torch.set_num_threads(2)"""),
    ('md', """\
## The layer in a few lines

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

scikit-learn's 8 x 8 digits. Both variants start from the dictionary of a HALS fit on the training images.
*Frozen* trains only a linear head on the NMF codes; *end to end* also trains the dictionary through the
implicit backward (projected onto W >= 0 after each Adam step)."""),
    ('code', """\
from sklearn.datasets import load_digits
digits = load_digits()
images = torch.as_tensor(digits.data, dtype=torch.float64) / 16.0          # (1797, 64) in [0, 1]
targets = torch.as_tensor(digits.target)
order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
train, test = order[:1347], order[1347:]
rank, steps = 16, (15 if SMALL else 150)
start = NMF(rank, solver="hals", seed=0, dtype=torch.float64)
start.fit(images[train].T, max_iter=50 if SMALL else 200, tol=0)

curves, accuracy, dictionaries = {}, {}, {}
for variant, learn_W in (("frozen", False), ("end to end", True)):
    torch.manual_seed(0)
    layer = NNLSLayer(64, rank, n_iter=20 if SMALL else 40, dtype=torch.float64)
    with torch.no_grad():
        layer.W.copy_(start.W)
    layer.W.requires_grad_(learn_W)
    net = torch.nn.Sequential(layer, torch.nn.LayerNorm(rank, dtype=torch.float64), torch.nn.Linear(rank, 10, dtype=torch.float64))
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.02)
    curves[variant] = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images[train]), targets[train])
        loss.backward()
        optimiser.step()
        layer.project_()
        curves[variant].append(float(loss.detach()))
    with torch.no_grad():
        accuracy[variant] = float((net(images[test]).argmax(1) == targets[test]).double().mean())
    dictionaries[variant] = layer.W.detach().clone()
print({k: round(v, 3) for k, v in accuracy.items()})"""),
    ('code', """\
fig = plt.figure(figsize=(10, 3))
ax = fig.add_subplot(1, 3, 1)
for variant, curve in curves.items():
    ax.plot(curve, label=f"{variant}: test accuracy {accuracy[variant]:.3f}")
ax.set_xlabel("Adam step"); ax.set_ylabel("training cross-entropy"); ax.legend(fontsize=7)
for i, variant in enumerate(dictionaries):
    atoms = torch.nn.functional.pad(dictionaries[variant].T.reshape(rank, 8, 8), (0, 1, 0, 1), value=float("nan"))
    grid = torch.cat([torch.cat(list(atoms[row * 4:(row + 1) * 4]), dim=1) for row in range(4)], dim=0)
    ax = fig.add_subplot(1, 3, i + 2)
    ax.imshow(grid, cmap="gray_r"); ax.set_title(f"dictionary atoms, {variant}", fontsize=8); ax.axis("off")
plt.show()"""),
    ('md', """\
## Unmixing Urban with factors trained by autograd

The fixed-point solver (accelerated HALS) against `train_autograd` on an NMF's W and H (softplus
parametrization, Adam), from the same start. Generated data replaces the Urban file when it is absent."""),
    ('code', SHOW + """
from torchnmf_l1.io import load_data
from torchnmf_l1.io import plots
if (DATA / "urban_undersampled4.mat").exists():
    X = torch.as_tensor(np.asarray(load_data(DATA / "urban_undersampled4.mat", key="M").X, dtype=np.float64))[:, ::16]
else:
    bands = torch.linspace(0, 1, 162, dtype=torch.float64)
    X = torch.exp(-((bands[:, None] - torch.linspace(0.1, 0.9, 6, dtype=torch.float64)) ** 2) / 0.03) @ torch.rand(6, 400, dtype=torch.float64)
X = X / X.max()
hals = NMF(6, solver="hals", seed=0, dtype=torch.float64)
hals.fit(X, max_iter=30 if SMALL else 300, tol=0)
learned = NMF(6, seed=0, dtype=torch.float64)
learned.fit(X, max_iter=1, tol=0)    # the same NNDSVDa start, one HALS step
with torch.no_grad():
    learned.W.clamp_(min=1e-6); learned.H.clamp_(min=1e-6)
positive(positive(learned, "W", "softplus"), "H", "softplus")
history = train_autograd(learned, X, steps=60 if SMALL else 600, lr=0.01)
for name, m in (("HALS", hals), ("train_autograd", learned)):
    print(f"{name:15s} relative error {float(torch.linalg.norm(X - m.reconstruct()) / torch.linalg.norm(X)):.4f}")
display(Image(filename=plots.plot_spectra(learned.W.detach().numpy(), FIGURES / "urban_autograd.png",
                                          reference=hals.W.detach().numpy(), title="Urban: endmembers by Adam")))"""),
], requires=("NNLSLayer", "NMF"))
