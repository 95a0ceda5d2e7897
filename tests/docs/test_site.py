"""The HTML site built from the committed docs, and the getting-started example.

The site is built from the committed Markdown into a temporary folder
(MkDocs with the Material theme), opened in headless Chromium, and its
state diagrams are measured after layout and looked for in a screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

import pytest

from tests.support import browser
from asyncspec.conformance.docgen.pages import area_views
from asyncspec.spec import RULES, machines

pytestmark = pytest.mark.slow  # they regenerate the docs, build the site and open it in a browser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = os.path.join(ROOT, "docs")
GENERATED_PAGES = ("README.md", "getting-started.md", "conformance.md", "spec/")

needs_chromium = pytest.mark.skipif(browser.chromium() is None, reason="no chromium (the project's setup installs Debian's)")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from asyncspec.conformance.docgen.site import build_site

    out = tmp_path_factory.mktemp("site")
    index, warnings = build_site(DOCS, str(out / "site"))
    return str(out / "site"), index, warnings


def test_the_site_builds_without_broken_links_in_generated_pages(site):
    _root, index, warnings = site
    assert os.path.exists(index)
    ours = [w for w in warnings if any(f"'{p}" in w for p in GENERATED_PAGES)]
    assert not ours, "\n".join(ours)


def test_every_area_page_shows_its_diagrams(site):
    root, _index, _warnings = site
    for area in machines():
        with open(os.path.join(root, "spec", f"{area}.html")) as f:
            page = f.read()
        for view in area_views(area):
            svg = f"diagrams/{area}-{view.name}.svg"
            assert re.search(rf'<img[^>]+src="{re.escape(svg)}"', page), f"{area}.html has no <img> of {svg}"
            assert os.path.getsize(os.path.join(root, "spec", svg)) > 1000
        for rule in RULES.area(area):
            assert f'id="{rule.id.lower()}"' in page, f"{area}.html has no anchor for {rule.id}"


def test_the_search_index_covers_every_rule(site):
    root, _index, _warnings = site
    # The offline plugin inlines the index in a script, so search works from file:// too.
    path = os.path.join(root, "search", "search_index.js")
    assert os.path.exists(path), "no search index"
    with open(path) as f:
        text = f.read()
    data = json.loads(text[text.index("{") : text.rindex("}") + 1])
    assert data["docs"], "an empty search index"
    everything = " ".join(d["title"] + " " + d["text"] for d in data["docs"])
    for rule in RULES:
        if rule.area in machines():
            assert rule.id in everything, f"{rule.id} is not searchable"
    sections = {d["location"] for d in data["docs"]}
    assert any(loc.startswith("spec/readiness.html#state-diagrams") for loc in sections)


# Injected into a copy of an area page: after layout, every drawing's
# natural and rendered size, written into the DOM that --dump-dom prints.
MEASURE = """
<script>
window.addEventListener("load", function () {
  var found = [];
  document.querySelectorAll("article img").forEach(function (img) {
    var box = img.getBoundingClientRect();
    found.push({src: img.getAttribute("src"), complete: img.complete, naturalWidth: img.naturalWidth,
                naturalHeight: img.naturalHeight, width: box.width, height: box.height});
  });
  var out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>
"""


def _measure(root: str, area: str) -> list[dict]:
    page = os.path.join(root, "spec", f"{area}.html")
    probe = os.path.join(root, "spec", f"{area}.measure.html")
    with open(page) as f:
        text = f.read()
    with open(probe, "w") as f:
        f.write(text.replace("</body>", MEASURE + "</body>"))
    dom = browser.dump_dom("file://" + probe)
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@needs_chromium
def test_diagrams_are_drawn_after_layout(site):
    root, _index, _warnings = site
    for area in machines():
        images = {i["src"]: i for i in _measure(root, area)}
        for view in area_views(area):
            img = images.get(f"diagrams/{area}-{view.name}.svg")
            assert img is not None, f"{area}: no drawing of {view.name} in the rendered page"
            assert img["complete"] and img["naturalWidth"] > 200 and img["naturalHeight"] > 80, img
            assert img["width"] > 200 and img["height"] > 50, f"{area}/{view.name} is laid out too small: {img}"


# The drawings' box outline colour (conformance/docgen/diagrams.py), not used by the theme.
NODE_BORDER = (0x5C, 0x6B, 0xC0)


def _pixels_near(png_path: str, color: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels of a screenshot are within ``tolerance`` of ``color``."""
    with open(png_path, "rb") as f:
        data = f.read()
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, _depth, color_type = struct.unpack(">IIBB", body[:10])
            channels = {2: 3, 6: 4}[color_type]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    rows, prev = [], bytearray(width * channels)
    for y in range(height):  # undo the PNG row filters
        kind, line = raw[y * stride], bytearray(raw[y * stride + 1 : (y + 1) * stride])
        for i in range(len(line)):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    count = 0
    for line in rows:
        for x in range(0, len(line), channels):
            if all(abs(line[x + k] - color[k]) <= tolerance for k in range(3)):
                count += 1
    return count


@needs_chromium
def test_screenshot_shows_the_diagrams(site, tmp_path):
    root, _index, _warnings = site
    shot = browser.screenshot("file://" + os.path.join(root, "spec", "fiber.html"), str(tmp_path / "fiber.png"), 1280, 2600)
    assert browser.distinct_rows(shot) > 300, "a blank page"
    # The boxes of the lifecycle drawing are outlined in their own colour: they are on the screen.
    assert _pixels_near(shot, NODE_BORDER) > 300, "no drawing visible in the screenshot"


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.S | re.M)


def test_getting_started_example_runs_as_the_page_says(tmp_path):
    """The page's complete target, saved under the name it gives, checked with the page's own command."""
    with open(os.path.join(DOCS, "getting-started.md")) as f:
        page = f.read()
    example = page.split("### A complete readiness target", 1)[1]
    name = re.search(r"Save it as `([\w.]+\.py)`", example).group(1)
    code = _blocks(example, "python")[0]
    command = _blocks(example, "sh")[0].strip()
    assert command.startswith("asyncspec run readiness --target ") and "\n" not in command
    (tmp_path / name).write_text(code)
    exe = os.path.join(os.path.dirname(sys.executable), "asyncspec")
    done = subprocess.run(
        [exe, *command.split()[1:], "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = re.search(r"(\d+) passed, (\d+) failed", done.stdout)
    assert summary and int(summary.group(1)) >= 10 and summary.group(2) == "0", done.stdout[-2000:]
    assert "RDY-LT-1" in done.stdout


def test_docs_command_builds_the_site(tmp_path, monkeypatch):
    """`asyncspec docs --out DIR` writes the Markdown, the drawings and the site (prove stubbed: test_docs runs it)."""
    from asyncspec.conformance import cli
    from asyncspec.conformance.docgen import pages as docs
    monkeypatch.setattr(docs, "proof_outcomes", lambda report=None: [])
    out = tmp_path / "docs"
    out.mkdir()
    # The pages link the hand-written ones beside them.
    for keep in ("protocol.md", "conformance.md", "examples", "counterexamples"):
        src = os.path.join(DOCS, keep)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, out / keep)
    assert cli.main(["docs", "--out", str(out)]) == 0
    assert (out / "site" / "index.html").exists()
    for area in machines():
        assert (out / "site" / "spec" / f"{area}.html").exists()
        for view in area_views(area):
            assert (out / "spec" / "diagrams" / f"{area}-{view.name}.svg").exists()
