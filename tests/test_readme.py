"""The README's Python examples run as written (so that they stay true to the code).

Every ```python block of README.md is executed in a fresh namespace, except a block
preceded by an HTML comment ``<!-- not run by tests/test_readme.py: REASON -->`` (it needs
a file or a GPU): those are only compiled, so a syntax error still fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- not run by tests/test_readme\.py: (?P<reason>[^>]*) -->\n)?```python\n(?P<code>.*?)```", re.S)


def _blocks():
    text = README.read_text(encoding="utf-8")
    for number, match in enumerate(BLOCK.finditer(text), start=1):
        line = text.count("\n", 0, match.start("code")) + 1
        yield pytest.param(match["code"], match["reason"], id=f"block{number}-line{line}")


def test_readme_has_examples():
    assert len(list(_blocks())) >= 6


@pytest.mark.parametrize(("code", "skip_reason"), list(_blocks()))
def test_readme_example_runs(code, skip_reason, monkeypatch, tmp_path, one_thread):
    compiled = compile(code, str(README), "exec")
    if skip_reason:
        pytest.skip(skip_reason)
    monkeypatch.chdir(tmp_path)
    from torchnmf_l1 import registry

    before = {family: dict(table) for family, table in registry._SOLVERS.items()}
    try:
        exec(compiled, {"__name__": "readme_example"})
    finally:  # an example that registers a solver (Adding a solver) leaves the registry as it was
        for family, table in registry._SOLVERS.items():
            table.clear()
            table.update(before[family])
