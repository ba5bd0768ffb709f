"""README.md and docs/*.md: every relative link and every repository path they name resolves, and they
describe the software (no notes about how or by whom it was made)."""

import glob
import os
import re
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")  # [text](target "title"), ![alt](src)
HTML_SRC = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
# a backticked repository path: has a folder part or is a markdown file (`docs/API.md`, `nodes/ops.py`)
REPO_PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)*\.(?:md|py|js|json|txt|toml|yaml|png|jpg))`")
HISTORY = re.compile(r"\(issue \d+\)|\bissue #?\d+\b|\bwas lent\b|\bnot lent\b|\bthe session\b", re.I)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    s = re.sub(r"[`*_]", "", heading.strip().lower())
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(path: str) -> set[str]:
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_slug(m) for m in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def _targets(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks are not links
    return LINK.findall(text) + HTML_SRC.findall(text)


def test_docs_exist():
    assert "README.md" in DOCS and "docs/API.md" in DOCS and len(DOCS) >= 3


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    path = os.path.join(ROOT, doc)
    text = open(path, encoding="utf-8").read()
    broken = []
    for target in _targets(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        file_part = urllib.parse.unquote(file_part)  # a file name with spaces is linked as %20 (GitHub's way)
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(dest):
            broken.append(f"{target} (no {os.path.relpath(dest, ROOT)})")
        elif anchor and dest.endswith(".md") and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {os.path.relpath(dest, ROOT)})")
    assert broken == [], f"{doc}: broken links {broken}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_named_repository_file_exists(doc):
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    named = [p for p in REPO_PATH.findall(text) if "/" in p or p.endswith(".md")]
    missing = [p for p in named
               if not os.path.exists(os.path.join(ROOT, p))
               and not os.path.exists(os.path.join(ROOT, os.path.dirname(doc), p))]
    assert missing == [], f"{doc} names files that are not in the repository: {missing}"


@pytest.mark.parametrize("doc", DOCS)
def test_docs_describe_the_software_not_its_history(doc):
    lines = open(os.path.join(ROOT, doc), encoding="utf-8").read().splitlines()
    found = [f"line {i + 1}: {ln.strip()}" for i, ln in enumerate(lines) if HISTORY.search(ln)]
    assert found == [], f"{doc}: {found}"


def empty_headings(text: str) -> list[str]:
    """Headings followed by nothing but another heading of the same or a higher level (or the end)."""
    text = re.sub(r"```.*?```", "code", text, flags=re.S)
    lines = text.splitlines()
    heads = [(i, len(m.group(1)), m.group(2)) for i, ln in enumerate(lines) if (m := re.match(r"^(#+)\s+(.*)$", ln))]
    empty = []
    for k, (i, level, title) in enumerate(heads):
        nxt = heads[k + 1] if k + 1 < len(heads) else (len(lines), 0, "")
        body = "\n".join(lines[i + 1:nxt[0]]).strip()
        if not body and nxt[1] <= level:
            empty.append(title)
    return empty


@pytest.mark.parametrize("doc", DOCS)
def test_every_heading_has_content(doc):
    assert empty_headings(open(os.path.join(ROOT, doc), encoding="utf-8").read()) == [], doc


def test_the_heading_check_catches_an_empty_section():
    text = "# A\n\n## B\n\n## C\ntext\n### D\n```\n# not a heading\n```\n## E\n"
    assert empty_headings(text) == ["B", "E"]


def test_the_link_check_catches_a_broken_link(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n[ok](a.md#title) [bad](missing.md) [web](https://example.org)\n"
                                   "[spaced](b%20c.json)\n```\n[in code](nowhere.md)\n```\n")
    targets = _targets((tmp_path / "a.md").read_text())
    assert targets == ["a.md#title", "missing.md", "https://example.org", "b%20c.json"]
    assert _anchors(str(tmp_path / "a.md")) == {"title"}
    assert _slug("Set up in ComfyUI (portable build)") == "set-up-in-comfyui-portable-build"
