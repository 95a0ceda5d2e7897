"""The readiness area's state diagrams in the generated docs: what each one
looks at (`asyncspec.conformance.docgen.diagrams` explores the machine and
draws what it finds; nothing here says which transitions exist)."""

from __future__ import annotations

from asyncspec.conformance.docgen.diagrams import Step, View


def _readiness(name: str, title: str, caption: str, mode: str, oneshot: bool) -> View:
    reg = dict(slot=0, token=1, interest="r", mode=mode, oneshot=oneshot, rdhup=False)
    steps = [
        Step("create", (dict(slot=0, kind="pipe_r"),), label=lambda a: "create a pipe", show_obs=False),
        Step("register", (reg,), label=lambda a: "register", show_obs=False, when=lambda w: not w.slots[0].reg),
        Step("write_peer", (dict(slot=0, n=1),), label=lambda a: "peer writes", show_obs=False),
        Step("read_ours", (dict(slot=0, n=64),), label=lambda a: "read all", show_obs=False, when=lambda w: w.slots[0].rx > 0),
        Step("poll", (dict(max_events=8),), label=lambda a: "poll", when=lambda w: w.slots[0].reg),
    ]
    if oneshot:
        steps.append(Step("reregister", (reg,), label=lambda a: "reregister", show_obs=False, when=lambda w: w.slots[0].reg))

    def project(w) -> tuple[str, ...]:
        s = w.slots[0]
        if s.kind == 0:
            return ("no source",)
        facts = ["readable" if s.rx > 0 else "not readable"]
        if not s.reg:
            return tuple(facts + ["not registered"])
        if oneshot:
            facts.append("armed" if s.armed else "disarmed")
        facts.append("on the ready list" if s.queued else "not on the ready list")
        return tuple(facts)

    return View(
        area="readiness",
        name=name,
        title=title,
        caption=caption,
        steps=tuple(steps),
        project=project,
        profile="linux-epoll",
        dialect="epoll",
        keep=lambda w: w.slots[0].rx <= 2,
    )


READINESS = (
    _readiness(
        "level",
        "One level-triggered registration",
        "The read end of a pipe registered for reading, level-triggered (linux-epoll).  A poll reports the "
        "registration for as long as data is there (RDY-LT-1): a reported entry goes back on the ready list, and "
        "only a poll that finds it not readable drops it.",
        "lt",
        False,
    ),
    _readiness(
        "edge",
        "One edge-triggered registration",
        "The same pipe registered edge-triggered (EPOLLET).  A poll reports it once and takes it off the ready "
        "list (RDY-ET-1); only a new write puts it back — on Linux every write does, even when data was already "
        "there (RDY-ET-2) — so a reader must read until EAGAIN.",
        "et",
        False,
    ),
    _readiness(
        "oneshot",
        "One EPOLLONESHOT registration",
        "The same pipe registered level-triggered with EPOLLONESHOT.  The first report disarms the registration "
        "(RDY-ONESHOT-1): nothing more is reported, whatever is written, until a reregister (EPOLL_CTL_MOD) arms "
        "it again (RDY-ONESHOT-2).",
        "lt",
        True,
    ),
)

VIEWS = READINESS
