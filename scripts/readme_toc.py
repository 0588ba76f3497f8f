"""Write (or `--check`) the table of contents of README.md from its headings.

The contents list every `##` and `###` heading outside code blocks, nested, linked with the
anchors GitHub gives them, between the markers `<!-- toc -->` and `<!-- /toc -->`. A test runs
`--check`, so a section added, renamed or moved without `python scripts/readme_toc.py` fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- toc -->", "<!-- /toc -->"
LEVELS = (2, 3)


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every Markdown heading outside fenced code blocks."""
    found = []
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = re.match(r"^(#{1,6}) (.+?)\s*$", line)
        if match and not fenced:
            found.append((len(match.group(1)), match.group(2)))
    return found


def anchor(title: str, seen: dict[str, int]) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens,
    repeats numbered (`-1`, `-2`)."""
    slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def anchors(text: str) -> set[str]:
    """Every heading anchor of `text` (any level)."""
    seen: dict[str, int] = {}
    return {anchor(title, seen) for _level, title in headings(text)}


def contents(text: str) -> str:
    """The contents block (markers included) for `text`."""
    seen: dict[str, int] = {}
    lines = [START]
    for level, title in headings(text):
        slug = anchor(title, seen)
        if level in LEVELS:
            label = title.replace("`", "")
            lines.append(f"{'  ' * (level - LEVELS[0])}- [{label}](#{slug})")
    lines.append(END)
    return "\n".join(lines)


def with_contents(text: str) -> str:
    """`text` with its contents block replaced by a fresh one."""
    begin, end = text.index(START), text.index(END) + len(END)
    return text[:begin] + contents(text) + text[end:]


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    fresh = with_contents(text)
    if "--check" in argv:
        if fresh != text:
            print("README.md: the contents are stale; run `python scripts/readme_toc.py`")
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
