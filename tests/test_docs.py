"""The generated docs are what `asyncspec docs` makes from the spec now."""

from __future__ import annotations

import os
import re

from asyncspec.conformance import targets
from asyncspec.conformance.docs import write_catalog
from asyncspec.spec import RULES, all_machines, machines

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def test_the_rule_catalog_is_not_stale(tmp_path):
    for path in write_catalog(str(tmp_path)):
        name = os.path.relpath(path, tmp_path)
        committed = os.path.join(DOCS, name)
        assert os.path.exists(committed), f"docs/{name} is missing: run `asyncspec docs`"
        with open(path) as fresh, open(committed) as old:
            assert fresh.read() == old.read(), f"docs/{name} is stale: run `asyncspec docs`"


def test_every_rule_is_in_the_catalog_with_its_source():
    all_machines()
    for area in machines():
        with open(os.path.join(DOCS, "spec", f"{area}.md")) as f:
            text = f.read()
        for rule in RULES.area(area):
            assert f"### {rule.id}\n" in text
            assert rule.source in text


def test_the_matrix_lists_the_current_rules_and_targets():
    path = os.path.join(DOCS, "conformance.md")
    assert os.path.exists(path), "docs/conformance.md is missing: run `asyncspec docs --matrix`"
    with open(path) as f:
        text = f.read()
    all_machines()
    for area in machines():
        section = text.split(f"## {area}\n", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| \[([A-Z0-9-]+)\]", section, re.M)
        assert "| TGT-1 (the target survives every step) |" in section
        assert rows == [r.id for r in RULES.area(area)], f"the {area} matrix is stale: run `asyncspec docs --matrix`"
        header = next(line for line in section.splitlines() if line.startswith("| rule |"))
        assert re.findall(r"`([^`]+)`", header) == sorted(targets.BUILTIN.get(area, {})), f"{area}: targets changed"
        for link in re.findall(r"\]\((counterexamples/[^)]+)\)", section):
            assert os.path.exists(os.path.join(DOCS, link)), link
