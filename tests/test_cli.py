"""The command line driven as a user would: ``python -m torchnmf_l1 ...`` in a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from torchnmf_l1.cli import main
from torchnmf_l1.config import ConfigError, apply_override, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CONFIG = """
[run]
name = "tiny"
dtype = "float64"

[data]
synthetic = true
m = 20
n = 25
true_rank = 3
image_shape = [5, 5]

[model]
rank = 3
solver = "hals"
seed = 0

[fit]
max_iter = 40
tol = 0
check_every = 5

[output]
plots = ["convergence", "abundances", "spectra"]
"""


def cli(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "torchnmf_l1", *map(str, args)], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )


def test_run_writes_factors_report_and_png_figures(tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG)
    proc = cli("--quiet", "run", "tiny.toml", "--set", "fit.max_iter=30", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "tiny.toml"]  # no temporary folder left
    report = json.loads((out / "report.json").read_text())
    factors = np.load(out / "factors.npz")
    W, H = factors["W"], factors["H"]
    assert W.shape == (20, 3) and H.shape == (3, 25) and (W >= 0).all() and (H >= 0).all()
    assert json.loads(str(factors["config"]))["fit"]["max_iter"] == 30  # the override is what ran
    assert str(factors["version"]) == report["torchnmf_l1"]
    assert report["n_iter"] == 30 and report["iterations"][-1] == 30
    objective = np.array(report["objective"])
    assert (np.diff(objective) <= 1e-9 * objective[:-1]).all(), "HALS objective must not increase"
    # the report's error is the error of the saved factors on the same planted data
    rng = np.random.default_rng(0)
    X = rng.random((20, 3)) @ rng.random((3, 25))
    np.testing.assert_allclose(report["relative_error"], np.linalg.norm(X - W @ H) / np.linalg.norm(X), rtol=1e-6)
    assert report["relative_error"] < 0.05
    assert {"torch", "numpy", "python", "device", "platform"} <= set(report["versions"])
    import matplotlib.image

    assert sorted(report["figures"]) == ["figures/abundances.png", "figures/convergence.png", "figures/spectra.png"]
    for name in report["figures"]:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50 and image.std() > 0


MALFORMED = {
    "missing file": (None, "nope.toml: config file not found"),
    "unknown key": (CONFIG.replace("\nrank = 3\n", "\nrank = 3\nrnak = 2\n"), "unknown key model.rnak"),
    "negative rank": (CONFIG.replace("\nrank = 3", "\nrank = -2"), r"model.rank = -2 is not allowed; allowed: an integer >= 1"),
    "rank too large": (CONFIG.replace("\nrank = 3", "\nrank = 21"), r"model.rank = 21 is too large: it must be <= min\(m, n\) = 20"),
    "unknown solver": (CONFIG.replace('solver = "hals"', 'solver = "sCD-typo"'), r"model.solver = 'sCD-typo' is not allowed; allowed: None or a registered nmf solver: one of .*'hals'"),
    "wrong type": (CONFIG.replace("max_iter = 40", 'max_iter = "40"'), r"fit.max_iter must be None or an integer >= 0, got '40' \(str\)"),
    "plot that does not fit": (CONFIG.replace('plots = ["convergence", "abundances", "spectra"]', 'plots = ["basis"]'),
                               r"output.plots: 'basis' needs data.image_shape with rows \* cols = m = 20"),
    "CP refuses an NMF init": (CONFIG.replace('solver = "hals"', 'name = "cp"\ninit = "nndsvda"').replace(
        'plots = ["convergence", "abundances", "spectra"]', 'plots = ["convergence"]'),
        r"model.init = 'nndsvda' is not allowed; allowed: a registered cp initialisation: one of 'random', 'svd'"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_config_exits_2_and_writes_nothing(tmp_path, case):
    text, pattern = MALFORMED[case]
    if text is not None:
        (tmp_path / "nope.toml").write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = cli("run", "nope.toml", "--output", "out/deeper", cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial output


def test_flags_override_config_keys(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    config = load_config(path, ["model.rank=2", "run.device=cpu", "fit.tol=1e-3", "model.solver=mu"])
    assert (config["model"]["rank"], config["run"]["device"], config["fit"]["tol"], config["model"]["solver"]) == (2, "cpu", 1e-3, "mu")
    raw = {}
    with pytest.raises(ConfigError, match="the key must be section.key"):
        apply_override(raw, "rank=3")


def test_config_errors_name_key_and_allowed_values():
    base = {"run": {}, "data": {"synthetic": True}, "model": {"rank": 2}}
    with pytest.raises(ConfigError, match=r"run.dtype = 'float16' is not allowed; allowed values: \['float32', 'float64'\]"):
        validate_config({**base, "run": {"dtype": "float16"}})
    with pytest.raises(ConfigError, match=r"unknown table \[modle\]"):
        validate_config({**base, "modle": {}})
    with pytest.raises(ConfigError, match="exactly one of data.path"):
        validate_config({**base, "data": {}})
    with pytest.raises(ConfigError, match="missing required key model.rank"):
        validate_config({**base, "model": {}})
    with pytest.raises(ConfigError, match=r"output.plots = \['pie'\] is out of range"):
        validate_config({**base, "output": {"plots": ["pie"]}})


def test_unknown_model_gives_a_clear_error():
    from torchnmf_l1.config import MODELS

    with pytest.raises(ConfigError, match=r"model.name: unknown model 'pca'; allowed: \["):
        validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "name": "pca"}})
    for name in MODELS:  # every model of the table is there and validates with its own required keys
        model = {"rank": 2, "name": name, **({"dictionary": "self"} if "dictionary" in name else {})}
        validate_config({"run": {}, "data": {"synthetic": True}, "model": model})
    with pytest.raises(ConfigError, match="missing required key model.dictionary"):
        validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "name": "dictionary"}})
    # each model has its own keys: SeparableNMF takes no loss, CP no nndsvda, NMF no snap
    with pytest.raises(ConfigError, match=r"unknown key model.loss; allowed keys in \[model\] of model 'separable'"):
        validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "name": "separable", "loss": "kl"}})
    with pytest.raises(ConfigError, match=r"unknown key model.snap; allowed keys in \[model\] of model 'nmf'"):
        validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "snap": "hard"}})
    config = validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "name": "cp", "init": "svd"}})
    assert config["model"]["init"] == "svd"


def test_every_run_config_under_configs_is_valid_and_runs(tmp_path):
    """Every run config validates; those whose data is here run (2 iterations, no figures)."""
    import tomllib

    from torchnmf_l1.cli import run_config
    from torchnmf_l1.config import is_run_config

    checked, ran, models = 0, 0, set()
    for path in sorted((ROOT / "configs").glob("**/*.toml")):
        with open(path, "rb") as f:
            if not is_run_config(tomllib.load(f)):
                continue  # an experiment's own config
        config = load_config(path, ["fit.max_iter=2"])
        checked += 1
        models.add(config["model"]["name"])
        if config["data"]["path"] is None or Path(config["data"]["path"]).exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # 2 iterations do not converge
                report = run_config(config, tmp_path / path.stem, figures=False)
            assert report["n_iter"] == 2 and np.all(np.isfinite(report["objective"]))
            ran += 1
    from torchnmf_l1.config import MODELS

    assert models == set(MODELS), f"every model needs a config under configs/, missing {set(MODELS) - models}"
    assert checked >= len(MODELS)


def test_info_and_list(tmp_path, capsys):
    import scipy.sparse

    S = scipy.sparse.random(30, 40, density=0.1, random_state=0, format="csr")
    S.data -= 0.5  # some negative entries
    scipy.sparse.save_npz(tmp_path / "s.npz", S)
    assert main(["info", str(tmp_path / "s.npz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["shape"] == [30, 40] and d["nnz"] == S.nnz and d["nonnegative"] == bool(S.data.min() >= 0)
    np.testing.assert_allclose(d["density"], S.nnz / 1200)
    assert main(["info", str(tmp_path / "absent.npy")]) == 2
    assert "absent.npy: no such file" in capsys.readouterr().err
    assert main(["list", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    from torchnmf_l1.registry import available_solvers, get_solver

    assert sorted(cat["models"]["nmf"]["solvers"]) == available_solvers("nmf")
    assert cat["models"]["nmf"]["solvers"]["mu"]["losses"] == sorted(get_solver("mu").losses)
    assert main(["frobnicate"]) == 2


def test_top_words_brute_force_and_words_figure(tmp_path):
    from torchnmf_l1.io import plots

    rng = np.random.default_rng(0)
    W = rng.random((12, 3))
    vocab = [f"w{i}" for i in range(12)]
    got = plots.top_words(W, vocab, 4)
    for k in range(3):
        expected = [vocab[i] for i in sorted(range(12), key=lambda i: -W[i, k])[:4]]
        assert got[k] == expected
    path = plots.plot_top_words(W, tmp_path / "words.png", vocabulary=vocab, n_words=4)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_failed_run_leaves_no_output(tmp_path, monkeypatch):
    from torchnmf_l1 import cli

    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    config = load_config(path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "_figures", boom)  # fails after factors.npz was written
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.run_config(config, tmp_path / "a" / "b" / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.cuda
def test_run_on_cuda(tmp_path):
    from torchnmf_l1.cli import run_config

    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    config = load_config(path, ["run.device=cuda"])
    report = run_config(config, tmp_path / "out", figures=False)
    assert report["versions"]["device"] == "cuda" and report["relative_error"] < 0.05
    assert np.load(tmp_path / "out" / "factors.npz")["W"].shape == (20, 3)


TINY = {  # every model from the command line, on synthetic data, with its own keys
    "nmf": ('name = "nmf"\nrank = 3\nsolver = "hals"', "m = 20\nn = 25\ntrue_rank = 3", 0.05),
    "separable": ('name = "separable"\nrank = 3\nsolver = "spa"', "m = 20\nn = 25\ntrue_rank = 3", 0.3),
    "dictionary": ('name = "dictionary"\nrank = 3\ndictionary = "self"\ninit = "spa"', "m = 20\nn = 25\ntrue_rank = 3", 0.3),
    "cp": ('name = "cp"\nrank = 3\ninit = "svd"', "shape = [8, 9, 10]\ntrue_rank = 3", 0.05),
    "dictionary_cp": ('name = "dictionary_cp"\nrank = 3\ndictionary = "self"\nmode = 0', "shape = [8, 9, 10]\ntrue_rank = 3", 0.5),
    "streaming": ('name = "streaming"\nrank = 3\nblock_size = 7', "m = 20\nn = 25\ntrue_rank = 3", 0.05),
}


@pytest.mark.parametrize("name", list(TINY))
def test_every_model_runs_from_the_command_line(tmp_path, name):
    from torchnmf_l1.config import MODELS

    assert set(TINY) == set(MODELS), "a new model needs a command-line test"
    model, data, bound = TINY[name]
    (tmp_path / "c.toml").write_text(
        f'[run]\nname = "{name}"\ndtype = "float64"\n\n[data]\nsynthetic = true\n{data}\n\n[model]\n{model}\nseed = 0\n\n'
        f'[fit]\nmax_iter = 60\n\n[output]\nplots = ["convergence"]\n')
    proc = cli("--quiet", "run", "c.toml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    factors = np.load(tmp_path / "out" / "factors.npz")
    assert report["relative_error"] < bound, report["relative_error"]
    arrays = [factors[k] for k in factors.files if k not in ("config", "meta", "version")]
    assert arrays and all(np.isfinite(a).all() and (a >= 0).all() for a in arrays if a.dtype.kind == "f")
    if name in ("nmf", "separable", "dictionary", "streaming"):
        assert factors["W"].shape == (20, 3) and factors["H"].shape == (3, 25)
    if name in ("separable", "dictionary", "dictionary_cp"):
        assert factors["indices"].shape == (3,)


def test_run_command_line_details(tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG)
    # --set key=null is None (TOML has no null): the solver's default init
    config = load_config(tmp_path / "tiny.toml", ["model.init=null"])
    assert config["model"]["init"] is None
    # no progress bar into a pipe, one with --progress
    proc = cli("run", "tiny.toml", "--output", "a", cwd=tmp_path)
    assert proc.returncode == 0 and "it/s" not in proc.stderr and "objective=" not in proc.stderr, proc.stderr
    proc = cli("--progress", "run", "tiny.toml", "--output", "b", cwd=tmp_path)
    assert proc.returncode == 0 and "objective=" in proc.stderr, proc.stderr
    # the output folder has the permissions mkdir gives (not a temporary folder's 0700)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777 & ~umask
    # a killed run's hidden folders are removed by the next run into the same place
    dead = tmp_path / ".c.tmp-999999999-abc"
    dead.mkdir()
    proc = cli("--quiet", "run", "tiny.toml", "--output", "c", cwd=tmp_path)
    assert proc.returncode == 0 and not dead.exists()
    proc = cli("--version", cwd=tmp_path)
    from torchnmf_l1 import __version__

    assert proc.returncode == 0 and proc.stdout.strip() == f"torchnmf-l1 {__version__}"


def test_bad_data_files_exit_2_with_one_line(tmp_path):
    import scipy.io

    (tmp_path / "empty.npy").write_bytes(b"")
    np.savez(tmp_path / "good.npz", X=np.ones((4, 5)))
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    scipy.io.savemat(tmp_path / "vector.mat", {"v": np.arange(6.0)})
    import h5py

    with h5py.File(tmp_path / "full73.mat", "w") as f:
        f.create_dataset("X", data=np.ones((5, 4)))
    raw = (tmp_path / "full73.mat").read_bytes()
    (tmp_path / "trunc73.mat").write_bytes(raw[: len(raw) // 2])
    for name, pattern in [("empty.npy", "not a readable .npy file"), ("truncated.npz", "not a readable .npz file"),
                          ("vector.mat", r"no matrix \(2-D, every dimension > 1\)"), ("trunc73.mat", "not a readable")]:
        proc = cli("info", name, cwd=tmp_path)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, (name, proc.stderr)
        import re

        assert re.search(pattern, lines[0]), (name, lines[0])


def test_info_lists_variables_and_list_shows_each_models_keys(tmp_path, capsys):
    import scipy.io

    scipy.io.savemat(tmp_path / "two.mat", {"A": np.ones((4, 5)), "labels": np.arange(5.0)})
    assert main(["info", str(tmp_path / "two.mat"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert {v["name"]: v["shape"] for v in d["variables"]} == {"A": [4, 5], "labels": [1, 5]}
    assert d["variable"] == "A"
    assert main(["list", "--json"]) == 0
    cat = json.loads(capsys.readouterr().out)
    assert "snap" in cat["models"]["dictionary_cp"]["keys"] and "snap" not in cat["models"]["cp"]["keys"]
    assert "loss" in cat["models"]["nmf"]["keys"] and "loss" not in cat["models"]["separable"]["keys"]
    assert sorted(cat["models"]["separable"]["solvers"]) == sorted(__import__("torchnmf_l1").available_solvers("separable"))


def test_figures_say_what_they_show():
    pytest.importorskip("matplotlib")
    from torchnmf_l1.io import plots

    rng = np.random.default_rng(0)
    W, H = rng.random((20, 3)) * [1.0, 10.0, 100.0], rng.random((3, 6 * 5))
    Wn, Hn = plots.normalise_endmembers(W, H)
    np.testing.assert_allclose(Wn.max(axis=0), 1.0)
    np.testing.assert_allclose(Wn @ Hn, W @ H)  # the product is unchanged
    fig = plots.plot_spectra(W, None)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "W[:, k] / max W[:, k]"
    assert all(np.isclose(line.get_ydata().max(), 1.0) for line in ax.get_lines())
    assert plots.plot_spectra(W, None, normalise=False).axes[0].get_ylabel() == "W[:, k] (units of X)"
    fig = plots.plot_abundances(Hn, (6, 5), None)
    images = [a.get_images()[0] for a in fig.axes if a.get_images()]
    assert len(images) == 3 and len({im.get_clim() for im in images}) == 1  # one color scale
    assert images[0].get_clim() == (0.0, Hn.max())
    assert len(fig.axes) == 6  # a colorbar beside each map
    assert [a.get_title() for a in fig.axes if a.get_images()] == ["component 1", "component 2", "component 3"]
    own = plots.plot_abundances(Hn, (6, 5), None, shared_scale=False)
    assert len({a.get_images()[0].get_clim() for a in own.axes if a.get_images()}) == 3
    words = plots.plot_top_words(rng.random((8, 2)), None, vocabulary=list("abcdefgh"), n_words=3, title="classes: x, y")
    assert words._suptitle.get_text() == "classes: x, y"
    assert [t.get_text() for t in words.axes[0].get_yticklabels()] and words.axes[0].get_xlabel() == "weight / max"


def test_fit_table_names_only_fit_loop_options_and_the_models_own():
    """Every key of a config's [fit] table is an option of the fit loop or a fit option of the model."""
    from dataclasses import fields

    from torchnmf_l1.config import fit_schema, get_model_class
    from torchnmf_l1.fit import FitOptions

    loop_options = {f.name for f in fields(FitOptions)}
    for name in ("nmf", "separable", "dictionary"):
        own = set(getattr(get_model_class(name), "fit_hyperparameters", {}))
        assert set(fit_schema(name)) - own <= loop_options, name
