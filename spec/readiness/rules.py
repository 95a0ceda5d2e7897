"""The readiness rules: one epoll instance and the sources registered in it.

Each rule is one plain sentence.  ``linux-epoll`` is what Linux's epoll does,
exactly, including behaviour the man pages leave open and that was measured
on a real kernel (said in ``measured``).  ``portable`` is what a
cross-platform reactor (mio's contract) can promise on every backend.
"""

from ..core import SHOULD, rule

AREA = "readiness"
LINUX = "linux-epoll"
PORTABLE = "portable"
BOTH = (LINUX, PORTABLE)


def _r(id, statement, *, source, profiles=BOTH, **kw):
    return rule(id, statement, source=source, profiles=profiles, area=AREA, **kw)


# ------------------------------------------------------------ level-triggered

LT_REPORT = _r(
    "RDY-LT-1",
    """A level-triggered, armed registration whose source is ready for its
    interest (or has HUP or ERR) is reported by every poll that has room for
    it, for as long as the condition holds.""",
    source="epoll(7) 'Level-triggered and edge-triggered'",
    features=["level"],
)

# -------------------------------------------------------------- event contents

EV_TOKEN = _r(
    "RDY-EV-1",
    """An event carries the token given by the registration's most recent
    successful register or reregister.""",
    source="epoll_ctl(2) 'data' member of struct epoll_event; mio Registry::register",
)
EV_FLAGS = _r(
    "RDY-EV-2",
    """An event's flags are exactly the source's current readiness masked by
    the registration's interest, plus EPOLLHUP and EPOLLERR whatever the
    interest, plus EPOLLRDHUP only when it was asked for.""",
    source="epoll_ctl(2) EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP; fs/eventpoll.c ep_item_poll",
    profiles=[LINUX],
    features=["flags"],
)
EV_NOT_READY = _r(
    "RDY-EV-3",
    """A poll never reports a registration that is not reportable: not ready
    for its interest, not armed, or (edge-triggered) with no edge since its
    last report; and never a token that has no live registration.""",
    source="epoll_wait(2); epoll(7)",
    profiles=[LINUX],
)
EV_SPURIOUS = _r(
    "RDY-EV-4",
    """Spurious events are allowed: an armed registration may be reported
    although its source is not ready, but never a deregistered one or a
    disarmed oneshot one.""",
    source="mio Poll docs, 'Spurious events'",
    profiles=[PORTABLE],
)
EV_ONE_PER_REG = _r(
    "RDY-EV-5",
    """One poll reports a registration at most once.""",
    source="fs/eventpoll.c ep_send_events (one ready-list entry per epitem)",
    profiles=[LINUX],
)

# ------------------------------------------------------------- edge-triggered

ET_ONCE = _r(
    "RDY-ET-1",
    """An edge-triggered registration is reported only after an edge since its
    last report; after it is reported it is not reported again until the next
    edge, even if the source is still ready.""",
    source="epoll(7) 'Level-triggered and edge-triggered', EPOLLET in epoll_ctl(2)",
    profiles=[LINUX],
    features=["edge"],
)
ET_EVERY_WRITE = _r(
    "RDY-ET-2",
    """Every write of new data to a pipe or socket, and every eventfd write, is
    a new edge for the reader, even when earlier data is still unread.""",
    source="fs/pipe.c pipe_write (poll_usage wake-ups since Linux 5.16), net/core/sock.c sock_def_readable",
    profiles=[LINUX],
    features=["edge"],
    measured="Linux 6.x: pipe, AF_UNIX socketpair and eventfd each report a second EPOLLET event after a second 1-byte write with the first byte unread.",
)
ET_WHOLE_READINESS = _r(
    "RDY-ET-3",
    """An edge-triggered event reports the source's whole current readiness
    within the interest, not only the direction whose edge triggered it.""",
    source="fs/eventpoll.c ep_send_events (revents = ep_item_poll)",
    profiles=[LINUX],
    features=["edge", "flags"],
    measured="Linux 6.x: a socketpair end registered EPOLLIN|EPOLLOUT|EPOLLET that is writable reports IN|OUT when the peer writes.",
)
ET_KEY_FILTER = _r(
    "RDY-ET-4",
    """A wake-up whose events do not meet the registration's interest (or
    HUP/ERR) is not an edge for it: reading an eventfd (an EPOLLOUT wake-up)
    is no edge for an EPOLLIN-only registration, writing one (EPOLLIN) none
    for an EPOLLOUT-only one.  Hang-ups wake every registration.""",
    source="fs/eventpoll.c ep_poll_callback (pollflags & epi->event.events); fs/eventfd.c",
    profiles=[LINUX],
    features=["edge"],
    measured="Linux 6.x: eventfd registered EPOLLOUT|EPOLLET: a write reports nothing, a read reports OUT.",
)
ET_CTL_IS_EDGE = _r(
    "RDY-ET-5",
    """Registering or reregistering a source that is already ready for the new
    interest counts as an edge: the next poll reports it once.""",
    source="fs/eventpoll.c ep_insert and ep_modify (poll the file, queue if ready)",
    profiles=[LINUX],
    features=["edge"],
    measured="Linux 6.x: ADD with EPOLLET on a readable pipe reports once; MOD with the same flags reports once more.",
)
ET_DRAIN = _r(
    "RDY-ET-6",
    """Once a source has been read or written until EAGAIN, the next time it
    becomes ready its edge-triggered registration is reported: draining until
    EAGAIN never strands data without an event.""",
    source="epoll(7) Q9 and 'suggested way'; mio Poll docs 'Draining readiness'",
    features=["edge"],
)

# -------------------------------------------------------------------- oneshot

ONESHOT_ONCE = _r(
    "RDY-ONESHOT-1",
    """A oneshot registration is reported at most once per arming: after its
    event it is disabled, and no wake-up reports it again.""",
    source="epoll_ctl(2) EPOLLONESHOT",
    features=["oneshot"],
)
ONESHOT_REARM = _r(
    "RDY-ONESHOT-2",
    """Reregister (EPOLL_CTL_MOD) re-arms a disabled oneshot registration; a
    source already ready for the new interest is then reported again,
    level- or edge-triggered alike.""",
    source="epoll_ctl(2) EPOLLONESHOT; fs/eventpoll.c ep_modify",
    profiles=[LINUX],
    features=["oneshot"],
)
ONESHOT_STAYS = _r(
    "RDY-ONESHOT-3",
    """A disabled oneshot registration is still registered: register fails
    with EEXIST, reregister and deregister succeed.""",
    source="epoll_ctl(2) EPOLLONESHOT ('disabled', not removed)",
    profiles=[LINUX],
    features=["oneshot", "errors"],
)

# ------------------------------------------------------------- hang-up, error

HUP_ALWAYS = _r(
    "RDY-HUP-1",
    """EPOLLHUP is reported whatever the interest once the peer is gone: a
    pipe's read end after every write end closed, a socket after its peer
    closed.""",
    profiles=[LINUX],
    source="epoll_ctl(2) EPOLLHUP ('epoll_wait will always wait for this event'); pipe(7); unix(7)",
    features=["flags"],
    measured="Linux 6.x: registered with events=0, a pipe read end reports HUP after the writer closes, a socket HUP after its peer closes; peer shutdown(SHUT_WR) alone gives no HUP.",
)
ERR_ALWAYS = _r(
    "RDY-ERR-1",
    """EPOLLERR is reported whatever the interest on a pipe's write end once
    every read end is closed.""",
    source="epoll_ctl(2) EPOLLERR; pipe(7); fs/pipe.c pipe_poll",
    profiles=[LINUX],
    features=["flags"],
    measured="Linux 6.x: write end after the reader closed: OUT|ERR, or ERR alone while the pipe is full; events=0 still gets ERR.",
)
RDHUP_ASKED = _r(
    "RDY-RDHUP-1",
    """EPOLLRDHUP is reported after the peer's shutdown(SHUT_WR) or close, and
    only to a registration that asked for it.""",
    source="epoll_ctl(2) EPOLLRDHUP (since Linux 2.6.17)",
    profiles=[LINUX],
    features=["rdhup", "flags"],
)
EOF_READABLE = _r(
    "RDY-RDHUP-2",
    """After the peer shut down its write side or closed, the socket is
    readable, and once its data is read a read returns 0 (end of file).""",
    source="shutdown(2); unix(7); read(2)",
)

# ------------------------------------------------------------- source behaviour

SRC_READ = _r(
    "RDY-SRC-1",
    """A read of up to n bytes returns min(n, available) bytes; with nothing
    available it returns 0 once the peer's write side is shut or closed, and
    fails with EAGAIN otherwise.""",
    source="read(2) EAGAIN; pipe(7) 'I/O on pipes'; unix(7)",
)
SRC_WRITE = _r(
    "RDY-SRC-2",
    """A small write to a source that is not full writes all its bytes; after
    writing until EAGAIN the source is not writable, and it is writable again
    once the peer has read everything.""",
    source="write(2) EAGAIN; pipe(7) 'Pipe capacity'; unix(7)",
)
SRC_EPIPE = _r(
    "RDY-SRC-3",
    """A write to a pipe or socket whose reading side is closed or shut down
    fails with EPIPE.""",
    source="write(2) EPIPE; pipe(7); unix(7)",
)
SRC_RESET = _r(
    "RDY-SRC-5",
    """Closing a socket while the data its peer sent is unread resets the
    connection: the peer reports EPOLLERR (whatever its interest), and its
    next read, once its own queued data is read, fails with ECONNRESET,
    which clears the error.  This holds in both directions.""",
    source="unix(7); net/unix/af_unix.c unix_release_sock (sk_err = ECONNRESET)",
    profiles=[LINUX],
    measured="Linux 6.x: peer closed with 6 unread bytes: IN|OUT|ERR|HUP|RDHUP, recv -> ECONNRESET, then ERR is gone and recv returns b''.",
)
SRC_EVENTFD = _r(
    "RDY-SRC-4",
    """An eventfd write adds to its counter; a read returns the counter and
    resets it to 0, or fails with EAGAIN at 0; at 0xfffffffffffffffe it is not
    writable and a further write fails with EAGAIN.""",
    source="eventfd(2)",
    features=["eventfd"],
)

# ---------------------------------------------------------------------- poll

POLL_CAP = _r(
    "RDY-POLL-1",
    """A poll returns at most max_events events.""",
    source="epoll_wait(2) 'maxevents'",
    features=["cap"],
)
POLL_FILL = _r(
    "RDY-POLL-2",
    """When more registrations are reportable than max_events, a poll returns
    exactly max_events of them.""",
    source="fs/eventpoll.c ep_send_events",
    features=["cap"],
)
POLL_FAIR = _r(
    "RDY-POLL-3",
    """A poll should report ready registrations in ready-list order: the
    order in which they became ready, with each reported level-triggered
    registration moved to the back and the ones left out because max_events
    was reached kept at the front.  So with R registrations staying ready,
    each is reported at least once in every ceil(R / max_events)
    consecutive polls.""",
    source="fs/eventpoll.c ep_send_events / ep_done_scan (unreported entries spliced back to the head, reported level-triggered ones re-added at the tail)",
    profiles=[LINUX],
    features=["cap"],
    tier=SHOULD,
    rationale="""The man pages promise no order: this is the kernel's
    implementation, and what keeps a capped poll fair (epoll(7) 'Possible
    pitfalls': starvation).  An epoll look-alike may order events
    differently without breaking a program; one that starves a ready
    registration does.""",
    measured="Linux 6.x: 5 level-triggered ready pipes polled with maxevents=2 come back A,B / C,D / E,A / B,C / D,E; a pipe that becomes ready between polls joins after the re-queued ones; an entry no longer ready drops out.",
)
POLL_EINVAL = _r(
    "RDY-POLL-4",
    """A poll with max_events < 1 fails with EINVAL and changes nothing.""",
    profiles=[LINUX],
    source="epoll_wait(2) ERRORS EINVAL",
    features=["errors"],
)

# ------------------------------------------------------------------- epoll_ctl

CTL_EEXIST = _r(
    "RDY-CTL-1",
    """Registering an fd that is already registered fails with EEXIST.""",
    profiles=[LINUX],
    source="epoll_ctl(2) ERRORS EEXIST",
    features=["errors"],
)
CTL_ENOENT = _r(
    "RDY-CTL-2",
    """Reregistering or deregistering an fd that is not registered fails with
    ENOENT.""",
    profiles=[LINUX],
    source="epoll_ctl(2) ERRORS ENOENT",
    features=["errors"],
)
CTL_EBADF = _r(
    "RDY-CTL-3",
    """Any epoll_ctl call on a closed fd fails with EBADF.""",
    source="epoll_ctl(2) ERRORS EBADF",
    features=["errors"],
)
CTL_EPERM = _r(
    "RDY-CTL-4",
    """Registering a regular file fails with EPERM.""",
    profiles=[LINUX],
    source="epoll_ctl(2) ERRORS EPERM",
    features=["errors"],
)
CTL_UNCHANGED = _r(
    "RDY-CTL-5",
    """A failed epoll_ctl call leaves the instance unchanged.""",
    source="epoll_ctl(2) RETURN VALUE",
    features=["errors"],
)
CTL_DEREGISTER = _r(
    "RDY-CTL-6",
    """After a successful deregister the source is never reported again, and
    it can be registered anew.""",
    source="epoll_ctl(2) EPOLL_CTL_DEL",
)

# -------------------------------------------------------------- nested epoll

NEST_READABLE = _r(
    "RDY-NEST-1",
    """An epoll instance registered in another is readable exactly while it
    has a ready registration to report: a level-triggered one keeps it
    readable after its own poll, an edge-triggered one whose event that poll
    delivered does not.""",
    source="epoll(7) Q3 ('an epoll file descriptor itself ... is readable'); fs/eventpoll.c ep_eventpoll_poll",
    profiles=[LINUX],
    features=["nested"],
    measured="Linux 6.x: inner pipe EPOLLIN LT: the outer keeps reporting the inner after inner polls; inner EPOLLET: after the inner poll delivered the edge, the outer reports nothing.",
)
NEST_EDGE = _r(
    "RDY-NEST-2",
    """Every wake-up of a registration inside the inner instance is a new edge
    for the outer instance's registration of the inner one, even when the
    inner instance already had events to report.""",
    source="fs/eventpoll.c ep_poll_callback (wakes ep->poll_wait with EPOLLIN on every callback)",
    profiles=[LINUX],
    features=["nested", "edge"],
    measured="Linux 6.x: outer EPOLLET on the inner epoll: a second pipe write with the first byte unread gives a second outer event.",
)

# ------------------------------------------------------ open file descriptions

OFD_KEEPS = _r(
    "RDY-OFD-1",
    """A registration belongs to the open file description: closing the
    registered fd while a dup of it is open keeps the registration, and its
    events keep arriving with the old token; epoll_ctl on the closed fd
    number fails with EBADF.""",
    source="epoll(7) Q6; epoll_ctl(2) NOTES",
    profiles=[LINUX],
    features=["dup", "ofd"],
    measured="Linux 6.x: after close(A) with B = dup(A) open, a write to the pipe is reported with A's data; epoll_ctl(MOD/DEL, A) fails EBADF.",
)
OFD_LAST_CLOSE = _r(
    "RDY-OFD-2",
    """Closing the last fd of the open file description removes its
    registration: it is never reported again.""",
    source="epoll(7) Q6 ('all file descriptors referring to an open file description have been closed')",
    features=["ofd"],
)


# --------------------------------------------------------- bsd-kqueue profile
#
# kqueue(2)'s rules, read by the `bsd-kqueue` machine (kqueue.py): exact to
# the FreeBSD/macOS manual page, checked by scenarios against the model only
# (there is no kqueue on Linux).

KQUEUE = "bsd-kqueue"
MAN = "kqueue(2) (FreeBSD 14, macOS)"


def _kq(id, statement, source, **kw):
    return rule(id, statement, source=source, profiles=[KQUEUE], area=AREA, **kw)


KQ_FILTERS = _kq(
    "RDY-KQ-1",
    """EVFILT_READ and EVFILT_WRITE of one fd are separate registrations, each
    with its own udata and flags; deleting one leaves the other.""",
    f"{MAN} 'kevent() ... identified by the (ident, filter) pair'",
)
KQ_LEVEL = _kq(
    "RDY-KQ-2",
    """Without EV_CLEAR an enabled knote is returned by every kevent() call
    while its condition holds: data to read (or EOF) for EVFILT_READ, room to
    write (or EOF) for EVFILT_WRITE.""",
    f"{MAN} EVFILT_READ, EVFILT_WRITE",
)
KQ_CLEAR = _kq(
    "RDY-KQ-3",
    """With EV_CLEAR, once a knote is returned its state is reset: it is not
    returned again until new activity on the source (a write, a read by the
    peer, a close or shutdown), even while the condition still holds.""",
    f"{MAN} EV_CLEAR",
)
KQ_ONESHOT = _kq(
    "RDY-KQ-4",
    """With EV_ONESHOT a knote is returned once and then deleted: deleting
    or enabling it afterwards fails with ENOENT.""",
    f"{MAN} EV_ONESHOT",
)
KQ_DISPATCH = _kq(
    "RDY-KQ-5",
    """With EV_DISPATCH a knote is disabled as soon as it is returned, and
    returned again only after EV_ENABLE (it stays registered).""",
    f"{MAN} EV_DISPATCH",
)
KQ_EOF = _kq(
    "RDY-KQ-6",
    """EVFILT_READ returns with EV_EOF once the last writer closed or the
    peer shut down its write side, with data = the bytes still readable;
    EVFILT_WRITE returns with EV_EOF once the reader closed.""",
    f"{MAN} EVFILT_READ ('when the last writer disconnects, the filter will set EV_EOF'), EVFILT_WRITE",
)
KQ_ADD_MODIFIES = _kq(
    "RDY-KQ-7",
    """EV_ADD of a knote that exists modifies it (udata and flags) instead of
    adding a duplicate, and enables it.""",
    f"{MAN} EV_ADD ('Re-adding an existing event will modify the parameters')",
)
KQ_ERRORS = _kq(
    "RDY-KQ-8",
    """EV_DELETE, EV_ENABLE or EV_DISABLE of a knote that does not exist fails
    with ENOENT; any change on a closed fd fails with EBADF; a failed change
    changes nothing.""",
    f"{MAN} ERRORS ENOENT, EBADF",
)
KQ_CLOSE = _kq(
    "RDY-KQ-9",
    """close() of an fd removes every knote of that fd, even while a dup of
    it keeps the file open.""",
    f"{MAN} 'Calling close() on a file descriptor will remove any kevents that reference the descriptor'",
)
KQ_NEVENTS = _kq(
    "RDY-KQ-10",
    """kevent() returns at most nevents events, exactly nevents when more
    knotes are ready; nevents 0 returns nothing and is no error.""",
    f"{MAN} kevent() 'nevents'",
)
KQ_DATA = _kq(
    "RDY-KQ-11",
    """A returned EVFILT_READ event's data is the number of bytes available
    to read.""",
    f"{MAN} EVFILT_READ ('data contains the number of bytes')",
)
KQ_DISABLED = _kq(
    "RDY-KQ-12",
    """A disabled knote is never returned; its filter still runs, so activity
    while disabled is reported once it is enabled again.""",
    f"{MAN} EV_DISABLE ('the filter itself is not disabled')",
)
