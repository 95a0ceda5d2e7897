"""The test suite is one package (tests/), laid out like the project:
spec/ model/ impl/ conformance/ docs/, with support/ (helpers), fixtures/
(deliberately broken and example targets, the toy area) and scenarios/
(hand-written runs, as data for any target).  pytest puts the repository
root on sys.path, so everything here imports as ``tests.…`` and a target
is named ``tests.fixtures.broken_reactors:StaleToken``, in worker
processes too."""

import fcntl
import os
import pickle
from dataclasses import dataclass

import pytest

from asyncspec.model import prove as PR
from tests.support.leaks import children, open_fds


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves a child process (running or zombie) or an fd behind."""
    fds, kids = open_fds(), children()
    yield
    assert children() == kids, "a child process was left behind (running or zombie)"
    assert open_fds() == fds, "file descriptors leaked"


@dataclass
class ProofTable:
    outcomes: list  # PR.Outcome per row, in table order
    lines: list  # the table's lines, as `prove` reported them


@pytest.fixture(scope="session")
def proof_table(tmp_path_factory) -> ProofTable:
    """`asyncspec prove`'s whole table, computed once per test run.

    A session fixture runs once per pytest-xdist worker, so the first worker
    to ask computes the table and leaves it in a file for the others: in the
    run's own temporary folder (the workers' folders' parent; without xdist,
    the session's), under a lock, written whole before it is renamed into
    place.  The folder is the run's, so the table cannot be a stale one.
    Tests that weaken the spec prove their own few rows instead."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = root / "proof-table.pickle"
    with open(root / "proof-table.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            lines: list = []
            outcomes = PR.prove(report=lines.append)
            rows = [(o.prop.area, o.prop.name, o.status, o.detail, o.seconds, o.files, o.run) for o in outcomes]
            part = path.with_suffix(".part")
            part.write_bytes(pickle.dumps((rows, lines)))
            os.replace(part, path)
        rows, lines = pickle.loads(path.read_bytes())
    assert [(area, name) for area, name, *_ in rows] == [(p.area, p.name) for p in PR.PROPERTIES]
    outcomes = [PR.Outcome(p, status, detail, seconds, files, run) for p, (_a, _n, status, detail, seconds, files, run) in zip(PR.PROPERTIES, rows)]
    return ProofTable(outcomes, lines)
