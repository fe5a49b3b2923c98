"""The command line driven as a user would: ``python -m torchnmf_l1 ...`` in a fresh folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    "negative rank": (CONFIG.replace("\nrank = 3", "\nrank = -2"), r"model.rank = -2 is out of range; allowed: an integer >= 1"),
    "rank too large": (CONFIG.replace("\nrank = 3", "\nrank = 21"), r"model.rank = 21 is too large: it must be <= min\(m, n\) = 20"),
    "unknown solver": (CONFIG.replace('solver = "hals"', 'solver = "sCD-typo"'), r"model.solver = 'sCD-typo' is not allowed; allowed values: \[.*'hals'"),
    "wrong type": (CONFIG.replace("max_iter = 40", 'max_iter = "40"'), r"fit.max_iter must be int, got '40'"),
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
    for name in MODELS:  # every model of the table is there and validates
        validate_config({"run": {}, "data": {"synthetic": True}, "model": {"rank": 2, "name": name}})


def test_every_run_config_under_configs_is_valid():
    import tomllib

    from torchnmf_l1.config import is_run_config

    checked = 0
    for path in sorted((ROOT / "configs").glob("**/*.toml")):
        with open(path, "rb") as f:
            if not is_run_config(tomllib.load(f)):
                continue  # an experiment's own config
        try:
            load_config(path)
        except ConfigError as err:
            if "not available in this version" in str(err):
                continue
            raise
        checked += 1
    assert checked >= 1


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
