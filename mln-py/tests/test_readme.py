"""The README's examples run as written (the lifecycle one only where
User-Mode Linux is installed)."""

import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from test_lifecycle import require_uml

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def run(block: str) -> None:
    old = Path.cwd()
    os.chdir(REPO)
    try:
        exec(compile(block, str(README), "exec"), {})
    finally:
        os.chdir(old)


def test_readme_has_both_examples() -> None:
    assert len(BLOCKS) == 2
    assert "mln.up(" in BLOCKS[1]


def test_readme_model_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    run(BLOCKS[0])
    out = capsys.readouterr().out
    assert "router 64 MiB" in out
    assert "error[E0004]" in out
    assert "Plan for project shop (upgrade):" in out


def test_readme_lifecycle_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    require_uml()
    try:
        run(BLOCKS[1])
    finally:
        shutil.rmtree("/tmp/mln-demo/state", ignore_errors=True)
    out = capsys.readouterr().out
    assert "finished start solo" in out
    assert "'state': 'running'" in out
