"""A real headless Chromium for tests: load a page, dump its DOM, take a screenshot.

Chromium is started in its own process group and the whole group is killed when a
run ends, times out or fails, so no browser process outlives a test. A small probe
script is added to a copy of the page: it writes each top-level ``<svg>``'s box into
the DOM, so the screenshot's pixels can be looked at plot by plot.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

PROBE = """<script>
for (const svg of document.querySelectorAll('svg')) {
  if (svg.parentElement.closest('svg')) continue;
  const r = svg.getBoundingClientRect();
  svg.setAttribute('data-box', [r.left, r.top + scrollY, r.width, r.height]
    .map(Math.round).join(','));
}
document.body.setAttribute('data-height', document.documentElement.scrollHeight);
</script>"""

SHAPES = {"path", "circle", "rect", "line", "polyline", "polygon", "ellipse", "use", "text"}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: run scripts/ensure-chromium.sh"
    return found


def run_chromium(args: list[str], *, timeout_s: float = 60.0) -> str:
    """Run headless Chromium with ``args``; its stdout. The process group dies after."""
    with tempfile.TemporaryDirectory(prefix="llmfleet-chromium-") as profile:
        command = [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
            f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=timeout_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, f"chromium exited {process.returncode}: {err[-2000:]}"
    return out


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parent: Element | None
    children: list[Element]

    def ancestors(self) -> list[Element]:
        found, node = [], self.parent
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def descendants(self) -> list[Element]:
        return [d for child in self.children for d in (child, *child.descendants())]


class _Tree(HTMLParser):
    """The element tree as Chromium serialized it (it is already well formed)."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "img",
        "input",
        "link",
        "hr",
        "col",
        "area",
        "base",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__()
        self.root = Element("#root", {}, None, [])
        self.open = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.open, [])
        self.open.children.append(element)
        if tag not in self.VOID:
            self.open = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.children.append(Element(tag, {k: v or "" for k, v in attrs}, self.open, []))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.open
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.open = node.parent


def parse_dom(text: str) -> Element:
    tree = _Tree()
    tree.feed(text)
    return tree.root


@dataclass(frozen=True)
class Rendered:
    dom: Element
    screenshot: Path


def render_page(page: Path, out: Path, *, width: int = 1200) -> Rendered:
    """The page as Chromium parsed it (with the probe's boxes) and a full-height screenshot,
    both at the same width so the boxes fall on the same pixels."""
    probed = out / "probed.html"
    probed.write_text(page.read_text() + PROBE)
    dom = parse_dom(run_chromium([f"--window-size={width},1000", "--dump-dom", probed.as_uri()]))
    body = next(e for e in dom.descendants() if e.tag == "body")
    height = min(int(body.attrs.get("data-height", "2000")), 16000)
    shot = out / "report.png"
    run_chromium([f"--screenshot={shot}", f"--window-size={width},{height}", probed.as_uri()])
    assert shot.exists(), "chromium wrote no screenshot"
    return Rendered(dom, shot)
