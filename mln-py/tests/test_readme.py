"""The README's example runs as written."""

import os
import re
from pathlib import Path

import pytest

from conftest import REPO

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "no python example in the README"
    old = Path.cwd()
    os.chdir(REPO)
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), {})
    finally:
        os.chdir(old)
    out = capsys.readouterr().out
    assert "router 64 MiB" in out
    assert "error[E0004]" in out
    assert "Plan for project shop (upgrade):" in out
