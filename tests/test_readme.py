"""The README stays true: its programs run as written, its files parse, CI runs its command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from . import readme
from .conftest import lines, run_script

PROGRAMS = [b for b in readme.blocks() if b.lang == "python" and b.name is None]


def test_the_readme_has_programs_and_files() -> None:
    """The README shows runnable programs and the web server files (so the tests below run)."""
    assert len(PROGRAMS) >= 2
    assert {"app.py", "app_dictconfig.py", "gunicorn.conf.py", "log_config.json"} <= set(
        readme.files())


@pytest.mark.parametrize("block", PROGRAMS, ids=[f"line{b.line}" for b in PROGRAMS])
def test_each_program_runs_as_written_in_an_empty_directory(
        tmp_path: Path, block: readme.Block) -> None:
    """Each Python program in the README runs as written, in an empty directory, without an
    error or a warning, and what it logs lands in its log file."""
    proc = run_script(tmp_path, block.code, timeout=60)
    assert proc.stderr == ""
    assert [line for f in sorted(tmp_path.rglob("*.log")) for line in lines(f)]


@pytest.mark.parametrize("name", sorted(readme.files()))
def test_each_named_file_parses(name: str) -> None:
    """The README's server files are valid Python or JSON (the server tests run them)."""
    code = readme.files()[name]
    if name.endswith(".json"):
        json.loads(code)
    else:
        compile(code, name, "exec")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    """.ci/run's test command is, character for character, the one the README gives."""
    text = readme.README.read_text()
    match = re.search(r"Run the tests.*?\n\n```sh\n(?P<command>[^\n]+)\n```", text, re.S)
    assert match, "the README's 'Run the tests' command block is gone"
    ci = (readme.README.parent / ".ci" / "run").read_text().strip().splitlines()
    assert match["command"] in ci  # a line of its own; the build and other Pythons follow
    assert "python -m mypy" in match["command"]
