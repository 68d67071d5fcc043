"""Paths shared by the tests: the sample projects and the invalid-file
corpus of mln-lang, both read straight from the repository."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROJECTS = REPO / "projects"
CORPUS = REPO / "mln-lang" / "tests" / "invalid"
