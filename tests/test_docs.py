"""The README stays short and keeps its two commands; every relative link in README.md and docs/ resolves."""
from __future__ import annotations

import re
from pathlib import Path

from .conftest import REPO

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# written on parallel branches of issue 14; tolerated only while absent, checked like any other once merged
PENDING = {"stable_streams.md", "weights.md", "timestamps.md", "testing.md", "performance.md"}


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def _links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_is_short_and_keeps_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "./bootstrap.sh demo    # the main job" in text
    assert "./bootstrap.sh test    # the whole test suite" in text


def test_readme_links_every_docs_file():
    linked = {Path(t.split("#")[0]).name for t in _links(README)}
    assert {p.name for p in DOCS} <= linked


def test_relative_links_resolve():
    bad = []
    for src in [README, *DOCS]:
        for target in _links(src):
            file, _, anchor = target.partition("#")
            dest = (src.parent / file).resolve() if file else src
            if not dest.exists():
                if dest.name not in PENDING:
                    bad.append(f"{src.name}: {target}")
                continue
            if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{src.name}: {target} (no such heading)")
    assert not bad, bad
