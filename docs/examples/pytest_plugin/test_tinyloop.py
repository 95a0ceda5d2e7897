"""tinyloop's own tests; `pytest` here also runs asyncspec's rules (see pytest.ini)."""

import os

import tinyloop


def test_a_pipe_with_data_is_readable():
    r, w = os.pipe()
    try:
        loop = tinyloop.Reactor()
        loop.watch(r, token=7, read=True)
        assert loop.wait(0) == []
        os.write(w, b"x")
        assert loop.wait(0) == [(7, tinyloop.READ)]
    finally:
        os.close(r)
        os.close(w)
