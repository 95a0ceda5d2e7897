"""The cffi declarations of a C layer, read from its header.

Each C layer has one header (reactor/reactor.h, fiber/fiber.h, task/task.h)
whose part between the lines ``/* cffi: begin */`` and ``/* cffi: end */``
is the layer's API, written once for C callers and for cffi alike.  cffi's
``cdef`` parses declarations, not real headers, so `declarations(path)`
hands it that part rewritten in three ways, each leaving the facts to the
compiler (API mode checks them against it):

* ``#define NAME value`` becomes ``#define NAME ...``: cffi takes the value
  from the compiler, so it may be any constant expression;
* preprocessor conditionals (``#if`` ... ``#endif``) are dropped and a name
  defined in several branches is declared once: the compiler picks the
  branch;
* a struct member that is ``_Atomic`` or whose name ends in ``_`` (private
  to the C layer) becomes ``...;``: cffi still learns the struct's size and
  the offsets of the other members from the compiler, and Python never
  touches those members.
"""

from __future__ import annotations

import re

BEGIN = "/* cffi: begin */"
END = "/* cffi: end */"

_DEFINE = re.compile(r"^\s*#\s*define\s+([A-Za-z_]\w*)\b(?!\()")
_CONDITIONAL = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b")
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
# A struct member on a line of its own: `type name;`, `type name[N];`.
_MEMBER = re.compile(r"^(\s*)(?P<decl>[^;{}()]*?\b(?P<name>\w+)\s*(\[[^\]]*\])?\s*;)\s*$")


def section(text: str, path: str = "<header>") -> str:
    """The text between the markers (exactly one pair)."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{path}: needs exactly one {BEGIN} ... {END} section")
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)]


def rewrite(decls: str) -> str:
    """The section rewritten for cffi's cdef (see the module doc)."""
    decls = _COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), decls)
    out: list[str] = []
    defined: set[str] = set()
    depth = 0  # braces open: inside a struct
    hidden = False  # the last line emitted in this struct is a `...;`
    for line in decls.splitlines():
        m = _DEFINE.match(line)
        if m:
            if m.group(1) not in defined:
                defined.add(m.group(1))
                out.append(f"#define {m.group(1)} ...")
            continue
        if _CONDITIONAL.match(line):
            continue
        if depth > 0:
            mm = _MEMBER.match(line)
            if mm and ("_Atomic" in mm.group("decl") or mm.group("name").endswith("_")):
                if not hidden:
                    out.append(f"{mm.group(1)}...;")
                    hidden = True
                continue
        if line.strip():
            hidden = False
        depth += line.count("{") - line.count("}")
        out.append(line)
    return "\n".join(out) + "\n"


def declarations(path: str) -> str:
    """The header's cffi section at `path`, ready for ``FFI.cdef``."""
    with open(path) as f:
        return rewrite(section(f.read(), path))
