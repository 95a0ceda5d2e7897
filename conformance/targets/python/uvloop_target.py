"""`uvloop`: uvloop's add_reader/add_writer (libuv's uv_poll_t), one loop per example."""

from __future__ import annotations

from asyncspec.conformance.targets.python.asyncio_target import CallbackLoopReactor


class UvloopTarget(CallbackLoopReactor):
    """uvloop's readiness API, driven exactly like the `asyncio` target.

    Registrations are ``add_reader``/``add_writer``/``remove_*`` with
    callbacks that record ``(fd, token, IN/OUT)``; a poll is
    ``loop.stop(); loop.run_forever()`` (see `AsyncioTarget`).  Measured
    with uvloop 0.23 (bundled libuv) on Linux 6.x:

    - One poll is one libuv iteration: exactly one ``epoll_pwait(timeout
      0)`` (strace).  ``call_soon(loop.stop)`` would take two iterations,
      two epoll_pwait and every ready callback run twice, because uvloop's
      ``stop`` itself only schedules ``_stop``.  Each ``run_forever`` on the
      main thread also opens and closes a socketpair for signal wake-ups.
    - A watch reaches the kernel lazily: ``uv_poll_init`` probes the fd at
      once (EPOLL_CTL_ADD then DEL), the real ADD is submitted by the next
      iteration (here batched through io_uring right before epoll_pwait).
      libuv registers level-triggered (no EPOLLET): a ready fd's callback
      runs in every iteration.
    - A lone EPOLLHUP is given the watcher's interest, so a pipe's read end
      whose writer closed is readable in every poll, as in asyncio.
    - EPOLLERR is not.  libuv's ``uv__poll_io`` turns EPOLLERR (without
      EPOLLPRI) into an error: it stops the poll handle and calls back with
      UV_EBADF; uvloop then runs the reader and the writer callback once
      each and closes the handle, leaving the closed UVPoll in its table.
      So a source with a pending error -- a pipe's write end after its
      reader closed, a socket whose peer closed with data unread -- is
      reported once and never again, although it stays ready: that breaks
      RDY-LT-1.  And ``add_reader``/``add_writer`` on that fd then raise
      RuntimeError ("unable to perform operation on <UVPoll closed=True>;
      the handler is closed") until ``remove_reader``/``remove_writer``
      drop the dead handle (they return None, not asyncio's bool): a
      reregister after the error event is a raising target (TGT-1).

    Claims the same features as `asyncio`, for the same reasons: ``level``,
    ``dup``, ``eventfd``, ``nested``.  Not ``errors``: a closed fd gives
    OSError(EBADF) and a regular file PermissionError(EPERM) from
    uv_poll_init's probe, but a second ``add_reader`` replaces the callback
    (no EEXIST) and removing an unwatched fd is silent (no ENOENT).  Not
    ``ofd``: libuv's documentation forbids closing an fd while it is
    polled.  The departure above is not claimed away: RDY-LT-1 is a rule of
    the ``level`` feature, and uvloop is level-triggered everywhere else.

    Results (``-n 300``, `linux-epoll` and `portable` alike): RDY-LT-1
    FAIL within a few examples, shrunk to five steps -- create a pipe_w,
    register it (r or w), close_peer, poll reports it, the next poll
    reports nothing (the explanation also names RDY-POLL-2, which is n/a
    for this target).  With RDY-LT-1 and RDY-POLL-2 excluded the search goes
    on to the RuntimeError (TGT-1); every other claimed rule passes.
    """

    name = "uvloop"
    description = (
        "uvloop (libuv uv_poll) add_reader/add_writer, one loop iteration per poll: level-triggered "
        "readable/writable only, as asyncio; departs from RDY-LT-1: an EPOLLERR source is reported "
        "once, then its handle is closed."
    )

    requires = ("uvloop",)
    requires_hint = "pip install uvloop (it is in the test extras)"

    def new_loop(self):
        import uvloop

        return uvloop.new_event_loop()


TARGETS = [UvloopTarget]
