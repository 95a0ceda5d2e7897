import os
import sys

# The scenario data module sits beside the tests.
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402

from leaks import children, open_fds  # noqa: E402


@pytest.fixture
def no_leaks():
    """Fail the test if it leaves a child process (running or zombie) or an fd behind."""
    fds, kids = open_fds(), children()
    yield
    assert children() == kids, "a child process was left behind (running or zombie)"
    assert open_fds() == fds, "file descriptors leaked"
