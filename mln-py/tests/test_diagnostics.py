"""Diagnostics of broken projects: codes, places and rendered messages.

Every file of mln-lang's invalid-file corpus names the code and line it
must produce in its header; the Python API must report the same."""

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import mln
from conftest import CORPUS

Expect = Tuple[str, int, Optional[str]]


def header(path: Path) -> Tuple[List[Expect], Dict[str, int]]:
    expects: List[Expect] = []
    capacity: Dict[str, int] = {}
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    for raw in path.read_bytes().split(b"\n"):
        line = raw.decode("utf-8", "replace")
        m = re.match(r"# expect: (\S+) line (\d+)(?: in (\S+))?$", line)
        if m:
            expects.append((m[1], int(m[2]), m[3]))
        elif line.startswith("# capacity:"):
            for pair in line.split(":", 1)[1].split():
                server, size = pair.split("=")
                capacity[server] = int(size[:-1]) * units[size[-1]]
    return expects, capacity


def diagnostics_of(path: Path, capacity: Dict[str, int]) -> List[mln.Diagnostic]:
    """What `mln check` would show: the errors that stop reading, or
    everything the checker finds."""
    try:
        project = mln.load(path, check=False)
    except mln.ProjectError as err:
        return err.diagnostics
    return project.check(capacity or None)


CASES = sorted(CORPUS.glob("*.mln"))


def test_corpus_is_there() -> None:
    assert len(CASES) > 40


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_corpus_file_reports_its_code_and_line(path: Path) -> None:
    expects, capacity = header(path)
    assert expects, "corpus file without an `# expect:` line"
    found = diagnostics_of(path, capacity)
    for code, line, inc in expects:
        want = (CORPUS / inc).resolve() if inc else path.resolve()
        hits = [
            d
            for d in found
            if d.code == code
            and d.line == line
            and d.file is not None
            and Path(d.file).resolve() == want
        ]
        assert hits, f"{code} at {want}:{line} not in {[str(d) for d in found]}"


def test_unknown_switch_has_place_help_and_rendering() -> None:
    with pytest.raises(mln.ProjectError) as info:
        mln.load(CORPUS / "unknown-switch.mln")
    err = info.value
    assert len(err.diagnostics) == 1
    d = err.diagnostics[0]
    assert (d.code, d.severity, d.title) == ("E0004", "error", "unknown switch")
    assert (d.line, d.column) == (10, 16)
    assert d.end_line == 10 and d.end_column == 19
    assert d.file == str(CORPUS / "unknown-switch.mln")
    assert d.help == "did you mean `lan`?"
    assert d.is_error
    assert "switch `lna`" in d.message
    # The message is the rustc-style rendering, with the source line.
    text = str(err)
    assert text.startswith("error[E0004]:")
    assert "unknown-switch.mln:10:16" in text
    assert "switch lna" in text and "^^^" in text
    assert "help: did you mean `lan`?" in text
    assert str(d).endswith("unknown-switch.mln:10:16: error[E0004]: " + d.message)
    assert d.to_dict()["code"] == "E0004"


def test_check_false_defers_checker_errors_to_check() -> None:
    project = mln.load(CORPUS / "unknown-switch.mln", check=False)
    assert [d.code for d in project.check()] == ["E0004"]


def test_syntax_error_in_text_raises_parse_error() -> None:
    with pytest.raises(mln.ParseError) as info:
        mln.parse("global { project p }\nhost a {\n", "bad.mln")
    (d,) = info.value.diagnostics
    assert (d.code, d.file, d.line, d.column) == ("E0002", "bad.mln", 2, 8)


def test_missing_file_is_a_project_error() -> None:
    with pytest.raises(mln.ProjectError) as info:
        mln.load("/nonexistent/project.mln")
    assert info.value.diagnostics[0].code == "E0018"


def test_warnings_do_not_stop_loading() -> None:
    text = "global { project p }\nswitch lan {\n}\nhost a { memroy 1G }\n"
    project = mln.parse(text, "w.mln")
    codes = sorted(d.code for d in project.check())
    assert "W0001" in codes and "W0002" in codes
    assert all(not d.is_error for d in project.check())


def test_capacity_check_is_opt_in() -> None:
    text = "global { project p }\nhost a { memory 2G }\n"
    project = mln.parse(text, "c.mln")
    assert "E0016" not in [d.code for d in project.check()]
    over = [d for d in project.check({"localhost": 1 << 30}) if d.code == "E0016"]
    assert over and over[0].line == 2
