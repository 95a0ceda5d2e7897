"""State diagrams derived from the spec machines, never drawn by hand.

A diagram is a *view* of one machine: a small configuration (which actions,
with which arguments), a bound on the states explored, and a projection of
each state onto the few facts that matter for the picture.  `explore` runs a
breadth-first search over the machine's own actions from ``machine.init``,
taking every allowed outcome of every enabled step, and merges the states
whose projections are equal; an edge is labelled with the step and what it
observes (the machine's own ``show``).  `to_dot` lays the result out for
Graphviz.  The per-area views live beside the docs generator
(`asyncspec.conformance.docgen.views`); an area without one gets `default_view`,
a bounded exploration of every action, so a new area is drawn at once.

The projection is a quotient: two concrete states with the same facts are
one node, and the node's edges are the union of theirs.  Every concrete
state the bound keeps is explored, so no transition between kept states is
missing from the picture.
"""

from __future__ import annotations

import hashlib
import html
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from asyncspec.spec import all_machines
from asyncspec.spec.core import Machine

FONT = "DejaVu Sans"


@dataclass(frozen=True)
class Step:
    """An action the view lets the search take, with the argument sets it may use.

    ``label`` names the step on the edges (default: the action's name and
    the arguments that are not fixed across the view's choices)."""

    action: str
    args: tuple[Mapping[str, Any], ...] = ({},)
    label: Callable[[Mapping[str, Any]], str] | None = None
    # Add what the step observes to its edge label: the machine's own text
    # (True), nothing (False), or this function's text for the observation.
    show_obs: bool | Callable[[Any], str] = True
    # Take the step only in the states where this holds (to keep a picture
    # to the point: no register of a registered source, no poll before any).
    when: Callable[[Any], bool] = lambda state: True


@dataclass(frozen=True)
class View:
    """One diagram: a small configuration of a machine and a projection."""

    area: str
    name: str  # file-name part: <area>-<name>.svg
    title: str
    caption: str  # plain words under the drawing
    steps: tuple[Step, ...]
    project: Callable[[Any], tuple[str, ...]]  # a state's facts: node identity and label
    profile: str | None = None  # the machine's default when None
    dialect: str = ""  # which of the area's machines ("" : the area's main one)
    keep: Callable[[Any], bool] = lambda state: True  # states beyond the bound are not explored
    max_states: int = 5000  # concrete states; more is an error in the view, not a silent cut
    max_nodes: int | None = None  # for the default view: stop at this many projected nodes
    rankdir: str = "LR"  # Graphviz's layout direction
    # Outcomes not drawn (by their observation), e.g. a use of a moved-from
    # binding in every state after the move; the caption should say so.
    hide: Callable[[Any], bool] = lambda obs: False


@dataclass
class Graph:
    view: View
    nodes: list[tuple[str, ...]] = field(default_factory=list)  # in discovery order; nodes[0] is initial
    edges: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (src, dst) -> labels
    states: int = 0  # concrete states explored
    truncated: bool = False


class ViewError(Exception):
    pass


def machine_of(view: View) -> Machine:
    for m in all_machines():
        if m.area == view.area and (not view.dialect or m.dialect == view.dialect):
            return m
    raise ViewError(f"view {view.area}/{view.name}: no machine for area {view.area!r} dialect {view.dialect!r}")


def _default_label(action: str, args: Mapping[str, Any], varying: set[str]) -> str:
    shown = [f"{k}={v}" for k, v in args.items() if k in varying]
    return f"{action}({', '.join(shown)})" if shown else action


def explore(view: View) -> Graph:
    machine = machine_of(view)
    profile = machine.profile(view.profile)
    plan = []
    for step in view.steps:
        action = machine.action(step.action)
        names = {p.name for p in action.params}
        for args in step.args:
            if set(args) != names:
                raise ViewError(
                    f"view {view.area}/{view.name}: {step.action} takes {sorted(names)}, the view gives {sorted(args)}"
                )
        varying = {k for k in names if len({repr(a[k]) for a in step.args}) > 1}
        for args in step.args:
            label = step.label(args) if step.label else _default_label(step.action, args, varying)
            plan.append((action, dict(args), label, step))

    graph = Graph(view)
    index: dict[tuple[str, ...], int] = {}

    def node(state) -> int | None:
        facts = tuple(view.project(state))
        if facts not in index:
            if view.max_nodes is not None and len(index) >= view.max_nodes:
                graph.truncated = True
                return None
            index[facts] = len(graph.nodes)
            graph.nodes.append(facts)
        return index[facts]

    start = machine.init(profile)
    node(start)
    seen = {start}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        src = node(state)
        for action, args, label, step in plan:
            if not step.when(state) or not action.pre(state, args, profile):
                continue
            for outcome in action.outcomes(state, args, profile):
                if outcome.breaks or view.hide(outcome.obs):
                    continue  # a known deviation is not something the spec allows
                nxt = outcome.next
                if not view.keep(nxt):
                    continue
                dst = node(nxt)
                if dst is None:
                    continue
                text = label
                if step.show_obs:
                    shown = machine.show(outcome.obs) if step.show_obs is True else step.show_obs(outcome.obs)
                    text += f" / {shown}" if shown else ""
                labels = graph.edges.setdefault((src, dst), [])
                if text not in labels:
                    labels.append(text)
                if nxt not in seen:
                    if len(seen) >= view.max_states:
                        if view.max_nodes is None:
                            raise ViewError(
                                f"view {view.area}/{view.name}: more than {view.max_states} states; bound it with `keep`"
                            )
                        graph.truncated = True  # a cut view (the default one): it says so
                        continue
                    seen.add(nxt)
                    queue.append(nxt)
    graph.states = len(seen)
    return graph


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def to_dot(graph: Graph) -> str:
    """The Graphviz text of a diagram: nodes are projected states, the
    initial one marked with an arrow from a dot; parallel steps between two
    nodes share one edge with a line each."""
    v = graph.view
    lines = [
        f"digraph {_ident(v.area + '_' + v.name)} {{",
        f'  graph [rankdir={v.rankdir}, fontname="{FONT}", fontsize=12, nodesep=0.4, ranksep=0.55, pad=0.2];',
        f'  node [shape=box, style="rounded,filled", fillcolor="#f5f7fb", color="#5c6bc0", fontname="{FONT}", fontsize=11, margin="0.12,0.06"];',
        f'  edge [color="#616161", fontname="{FONT}", fontsize=9, arrowsize=0.7];',
        '  start [shape=point, width=0.12, color="#212121", fillcolor="#212121", label=""];',
    ]
    leaving = {a for (a, b) in graph.edges if a != b}
    for i, facts in enumerate(graph.nodes):
        label = '<BR ALIGN="CENTER"/>'.join(_esc(f) for f in facts) or "(initial)"
        final = "" if i in leaving else ", peripheries=2"  # nothing leads out: an end state
        lines.append(f"  n{i} [label=<{label}>{final}];")
    if graph.nodes:
        lines.append("  start -> n0;")
    for (a, b), labels in graph.edges.items():
        text = '<BR ALIGN="LEFT"/>'.join(_esc(t) for t in labels) + '<BR ALIGN="LEFT"/>'
        lines.append(f"  n{a} -> n{b} [label=<{text}>];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _ident(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def dot_digest(dot: str) -> str:
    return hashlib.sha256(dot.encode()).hexdigest()


def render_svg(dot: str) -> str:
    """SVG text drawn by Graphviz's ``dot``, stamped with the digest of the
    DOT it was drawn from (the layout's bytes vary with Graphviz's version;
    the stamp lets a check tell a stale drawing from a differently drawn one)."""
    import graphviz

    svg = graphviz.Source(dot).pipe(format="svg", encoding="utf-8")
    stamp = f"<!-- drawn from DOT sha256 {dot_digest(dot)} -->\n"
    head, sep, rest = svg.partition("<svg")
    return head + stamp + sep + rest


def stamp_of(svg: str) -> str | None:
    marker = "<!-- drawn from DOT sha256 "
    at = svg.find(marker)
    return svg[at + len(marker) : at + len(marker) + 64] if at >= 0 else None


def default_view(machine: Machine) -> View:
    """For an area nobody wrote a view for yet: every action with its first
    argument values (slot 0, task 0, ...), the states as the machine
    describes them, cut at 24 nodes."""
    steps = []
    for a in machine.actions:
        if a.params:
            first = {p.name: p.domain[0] for p in a.params}
            steps.append(Step(a.name, (first,)))
        else:
            steps.append(Step(a.name))
    return View(
        area=machine.area,
        name="states",
        title=f"{machine.area}: the first states",
        caption="Every action with its first argument values, breadth first from the initial state, "
        "each state as the machine describes it (no view is configured for this area yet, so the drawing "
        "stops at 24 states).",
        steps=tuple(steps),
        project=lambda s: tuple(machine.describe(s).split("; ")),
        dialect=machine.dialect,
        max_nodes=24,
        max_states=2000,
    )


def arg_grid(**domains: Iterable[Any]) -> tuple[dict[str, Any], ...]:
    """Every combination of the given argument values, as a Step's ``args``."""
    names = list(domains)
    return tuple(dict(zip(names, combo)) for combo in itertools.product(*(tuple(domains[n]) for n in names)))
