"""Target `rustc` (pin area): the pinning contract as rustc and std enforce it.

Every trace becomes a Rust program (see conformance/targets/rust/pin/oracle.py): a step is
one statement, rustc says whether it compiles (and with which error codes),
and the traces that compile are run, printing where pinned values are,
whether their self-references still point into themselves, and where each
drop ran.  It needs rustc and nothing else: no crates, no network.

Compiling one trace at a time would cost a rustc run per example, so the
target is *batched*: a run first samples its traces, hands them all to
`prepare` (one crate per batch of traces), and then replays each trace
against an instance that answers from what `prepare` found.  Asked a
trace `prepare` never saw, an instance compiles that one on the spot.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping, Sequence

from asyncspec.conformance.target import Target
from asyncspec.conformance.targets.rust.pin import oracle as rustpin


def _key(action: str, args: Mapping[str, Any]) -> tuple:
    return (action, tuple(sorted(dict(args).items())))


class RustcPin(Target):
    name = "rustc"
    area = "pin"
    features = frozenset({"rust", "unpin"})
    description = "Traces compiled by rustc (error codes checked) and run (addresses, self-references, drops)."

    #: The runner samples traces itself and calls `prepare` with them.
    batched = True
    #: Nothing runs in this process: no worker needed around it.
    out_of_process = True
    #: The longest trace a batched run samples (the run's --steps, if smaller, wins).
    max_steps = 12

    # Observation of the last step of every trace prefix answered so far
    # (one table per class: a subclass may answer differently).
    _answers: dict[tuple, Hashable] = {}

    @classmethod
    def _table(cls) -> dict[tuple, Hashable]:
        if "_answers" not in cls.__dict__:
            cls._answers = {}
        return cls._answers

    @classmethod
    def unavailable(cls) -> str | None:
        return rustpin.available()

    @classmethod
    def prepare(cls, traces: Iterable[Sequence[tuple[str, Mapping[str, Any]]]], quiet: bool = True) -> None:
        """Compile and run every trace not answered yet (every prefix of a trace is answered with it).

        A batch the oracle cannot answer (rustc failed in a way no step
        explains) is left unanswered when ``quiet``: its traces are then
        compiled one at a time when asked, and the failure is reported at
        the step it belongs to.
        """
        todo: dict[tuple, list] = {}
        for trace in traces:
            key = tuple(_key(a, args) for a, args in trace)
            if key and key not in cls._table() and key not in todo:
                todo[key] = [(a, dict(args)) for a, args in trace]
        # A trace that is a prefix of another one asked for is answered with it.
        keys = sorted(todo, key=len, reverse=True)
        longest: list[tuple] = []
        prefixes: set[tuple] = set()
        for key in keys:
            if key in prefixes:
                continue
            longest.append(key)
            prefixes.update(key[:n] for n in range(1, len(key) + 1))
        if not longest:
            return
        for first in range(0, len(longest), rustpin.BATCH):
            keys = longest[first : first + rustpin.BATCH]
            try:
                answers = rustpin.observe([todo[k] for k in keys])
            except rustpin.RustcPinError:
                if not quiet:
                    raise
                continue
            for key, obs in zip(keys, answers):
                for n in range(1, len(key) + 1):
                    cls._table()[key[:n]] = obs[n - 1]

    @classmethod
    def forget(cls) -> None:
        """Drop every answer kept (the next steps are compiled again)."""
        cls._table().clear()

    def open(self) -> None:
        self._prefix: tuple = ()
        self._steps: list = []

    def perform(self, action: str, args: Mapping[str, Any]) -> Hashable:
        self._steps.append((action, dict(args)))
        self._prefix += (_key(action, args),)
        answers = type(self)._table()
        if self._prefix not in answers:
            type(self).prepare([self._steps], quiet=False)
        return answers[self._prefix]


TARGETS = [RustcPin]
