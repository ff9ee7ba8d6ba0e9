"""The README's promises: its commands exist and its configuration table matches the code."""

from __future__ import annotations

import re
from pathlib import Path

from alert_history.config import env_var_names

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_make_run_and_make_test_which_the_makefile_defines() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "lint", "bench"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_variable_named_in_the_readme_is_read_by_the_config() -> None:
    known = env_var_names()
    table = README.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    names_column = [row.split("|")[1] for row in table.strip().splitlines()[1:]]
    named = {n for cell in names_column for n in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    named -= {"LLM_"}  # a prefix, not a name
    assert named, "the configuration table lists variables"
    assert named <= set(known), named - set(known)
