"""The README's Python example runs as written against a real node."""

from __future__ import annotations

import os
import re

import pytest
from conftest import ROOT, Node


def test_the_readme_example_runs(
    node: Node, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "import numpy as np, vouch" in b)
    monkeypatch.setenv("VOUCH_NODE", node.url)
    monkeypatch.chdir(ROOT)
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "valid: receipt" in out and "True" in out and "shape_mismatch 400" in out
    assert os.environ["VOUCH_NODE"] == node.url
