"""Counterexamples as pictures: one Graphviz drawing per counterexample.

The drawing is made from a counterexample's data (the same dict a
counterexample file holds), so a saved file can be drawn again later.

    ┌ readiness · target impl · profile linux-epoll ┐
    │ 1  create(slot=0, kind='pipe_r')     → ok     │   each step: the call and what the target did,
    │    [0] pipe_r ours+peer ready=-               │   then only the parts of the state it changed
    │ 2  register(...)                     → ok     │
    │ 3  poll(max_events=2)                         │   the diverging step, in red: what the spec
    │    spec allowed: [token 1: IN]                │   allowed, what the target did, and the whole
    │    target did:   no events                    │   state before it
    └───────────────────────────────────────────────┘ ── RDY-ET-2: the rule's sentence, its source

Steps run top to bottom; a step that changed nothing shows one line, so a
20-step trace stays readable.  `render` runs Graphviz's ``dot`` through the
`graphviz` package; where ``dot`` is missing or fails, the .dot text is still
written and the note says why.
"""

from __future__ import annotations

import html
import shutil
import textwrap
from typing import Any, Iterable

from asyncspec.conformance.wire import tupled
from asyncspec.spec import machine_for

FONT = "DejaVu Sans"
RED, GREEN, GREY, DARK = "#c62828", "#2e7d32", "#757575", "#212121"
WIDTH = 90  # characters per line of a step's text


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _wrapped(text: str, width: int) -> str:
    return "<BR ALIGN=\"LEFT\"/>".join(_esc(line) for line in textwrap.wrap(text, width) or [""]) + '<BR ALIGN="LEFT"/>'


def _parts(described: Iterable[str]) -> list[str]:
    """The facts of a set of described states (`describe` joins a state's parts with '; ')."""
    out: list[str] = []
    for text in described:
        for part in str(text).split("; "):
            if part not in out:
                out.append(part)
    return out


def _call(step: dict) -> str:
    inner = ", ".join(f"{k}={v!r}" for k, v in step["args"].items())
    return f"{step['action']}({inner})"


def shower(area: str, profile: str):
    """The spec's own text for an observation (falls back to repr)."""
    try:
        machine = machine_for(area, profile)
        return machine.show
    except Exception:  # a file from another version: draw what we can
        return repr


def _row(content: str, color: str = DARK, size: int = 11, bg: str | None = None) -> str:
    bgattr = f' BGCOLOR="{bg}"' if bg else ""
    return f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"{bgattr}><FONT COLOR="{color}" POINT-SIZE="{size}">{content}</FONT></TD></TR>'


def to_dot(data: dict[str, Any]) -> str:
    """The DOT text of one counterexample (a dict in the counterexample file format)."""
    show = shower(data["area"], data["profile"])
    steps = data["steps"]
    violated = data.get("violated", [])
    warning = data.get("verdict") == "warning"
    title = (
        f"<B>{_esc(data['area'])}</B> · target <B>{_esc(data['target'])}</B> · profile {_esc(data['profile'])}"
        f" · {len(steps)} step{'s' if len(steps) != 1 else ''}"
        + (" · <I>warning (a rule this run tolerates)</I>" if warning else "")
    )
    lines = [
        "digraph counterexample {",
        f'  graph [rankdir=TB, fontname="{FONT}", fontsize=13, nodesep=0.35, ranksep=0.18, labelloc=t, label=<{title}<BR/> >];',
        f'  node [shape=plaintext, fontname="{FONT}", fontsize=11, margin=0];',
        f'  edge [color="{GREY}", arrowsize=0.6];',
    ]
    previous: list[str] = []
    for step in steps:
        i = step["index"]
        before = _parts(step.get("state_before", []))
        after = _parts(step.get("state_after", []))
        failing = bool(step.get("violated"))
        observed = show(tupled(step["observed"]))
        rows = []
        head = f"<B>{i}</B>  {_esc(_call(step))}"
        if failing:
            rows.append(_row(head, DARK, 12))
            allowed = [show(tupled(a)) for a in step.get("allowed", [])]
            rows.append(_row("<B>spec allowed:</B> " + (_wrapped(" | ".join(allowed), WIDTH) if allowed else "<I>nothing</I>"), GREEN))
            rows.append(_row("<B>target did:</B>  " + _wrapped(observed, WIDTH), RED))
            rows.append(_row("<I>state before:</I>", GREY, 9))
            for part in before or ["(unknown)"]:
                rows.append(_row(_wrapped(part, WIDTH + 20), GREY, 9))
            border, color, bg = 2, RED, "#fff3f3"
        else:
            arrow = f'   <FONT COLOR="{GREY}">→</FONT> '
            if len(_call(step)) + len(observed) > WIDTH:  # long observations (register values) go below
                rows.append(_row(head))
                rows.append(_row(arrow + _wrapped(observed, WIDTH)))
            else:
                rows.append(_row(head + arrow + _esc(observed)))
            changed = [p for p in after if p not in before]
            if len(step.get("state_after", [])) > 1:
                changed = [f"(one of {len(step['state_after'])} possible states)"] + changed
            for part in changed:
                rows.append(_row(_wrapped(part, WIDTH + 20), GREY, 9))
            border, color, bg = 1, "#bdbdbd", "#ffffff"
        table = (
            f'<TABLE BORDER="{border}" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" COLOR="{color}" BGCOLOR="{bg}">'
            + "".join(rows)
            + "</TABLE>"
        )
        lines.append(f"  s{i} [label=<{table}>];")
        if previous:
            lines.append(f"  {previous[-1]} -> s{i};")
        previous.append(f"s{i}")
        if failing:
            notes = [r for r in violated if r["id"] in step["violated"]] or [
                {"id": rid, "statement": "", "source": ""} for rid in step["violated"]
            ]
            for n, r in enumerate(notes):
                label = f'<FONT POINT-SIZE="12" COLOR="{RED}"><B>{_esc(r["id"])}</B></FONT><BR ALIGN="LEFT"/>'
                label += _wrapped(r.get("statement", ""), 52)
                if r.get("source"):
                    label += f'<FONT POINT-SIZE="9" COLOR="{GREY}">{_wrapped("source: " + r["source"], 60)}</FONT>'
                lines.append(
                    f'  r{i}_{n} [shape=note, style=filled, fillcolor="#ffebee", color="{RED}", margin="0.15,0.08", label=<{label}>];'
                )
                lines.append(f'  s{i} -> r{i}_{n} [color="{RED}", style=dashed, arrowhead=none];')
                lines.append(f"  {{ rank=same; s{i}; r{i}_{n}; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, base: str, formats: Iterable[str] = ("svg",)) -> tuple[dict[str, str], str]:
    """Write ``base.dot`` and each format Graphviz can make; returns (paths by kind, note).

    The note is empty when every format was rendered, else it says why not
    (no ``dot`` on PATH, or its error), and the .dot file is there anyway.
    """
    paths = {"dot": base + ".dot"}
    with open(paths["dot"], "w") as f:
        f.write(dot)
    try:
        import graphviz  # optional: without it the .dot is still written
    except ImportError:
        return paths, "the graphviz Python package is not installed; only the .dot file was written"
    notes = []
    for fmt in formats:
        try:
            data = graphviz.Source(dot).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            return paths, "Graphviz's `dot` is not on PATH (Debian: apt-get install graphviz); only the .dot file was written"
        except Exception as e:  # dot rejected the input or crashed: keep the .dot, say why
            notes.append(f"dot could not render {fmt}: {e}")
            continue
        path = f"{base}.{fmt}"
        with open(path, "wb") as f:
            f.write(data)
        paths[fmt] = path
    return paths, "; ".join(notes)


def dot_available() -> str | None:
    """None if Graphviz can render here, else why not."""
    return None if shutil.which("dot") else "Graphviz's `dot` is not on PATH"
