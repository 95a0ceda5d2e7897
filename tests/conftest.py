"""The test suite is one package (tests/), laid out like the project:
spec/ model/ impl/ conformance/ docs/, with support/ (helpers), fixtures/
(deliberately broken and example targets, the toy area) and scenarios/
(hand-written runs, as data for any target).  pytest puts the repository
root on sys.path, so everything here imports as ``tests.…`` and a target
is named ``tests.fixtures.broken_reactors:StaleToken``, in worker
processes too."""

import pytest

from tests.support.leaks import children, open_fds


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves a child process (running or zombie) or an fd behind."""
    fds, kids = open_fds(), children()
    yield
    assert children() == kids, "a child process was left behind (running or zombie)"
    assert open_fds() == fds, "file descriptors leaked"
