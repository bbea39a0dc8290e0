"""The documentation holds together: relative links and anchors resolve inside the
repository, every `docs/spec.md §N` citation names a section that exists, every repository
path a comment or document names exists, and no document carries development history. Plain
text checks; spikegrad is not imported."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs" / "spec.md"
SKIP_DIRS = {".git", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache", ".gpu",
             "node_modules"}
TEXT_SUFFIXES = {".py", ".pyi", ".md", ".txt", ".hpp", ".h", ".cpp", ".cc", ".cu", ".cuh",
                 ".in", ".cmake", ".toml", ".cfg", ".yml", ".yaml", ".json", ".sh", ".rst"}
HISTORY_MARKERS = ("issue #", "session", "seed 00")

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# docs/spec.md §N, §N-M, and lists such as §1, 3, 4 or §6 and 8.
RANGE = r"\d+(?:\s*[-\u2013]\s*\d+)?"
CITATION = re.compile(rf"docs/spec\.md\s*§\s*({RANGE}(?:\s*(?:,|and)\s*{RANGE})*)")


def documents():
    """README.md and every markdown file under docs/."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def tracked_text_files():
    """The repository's tracked text files (git ls-files), else a walk of the tree."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout
        paths = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in ROOT.rglob("*")
                 if not any(part in SKIP_DIRS or part.startswith(".venv")
                            for part in p.relative_to(ROOT).parts)]
    return [p for p in paths if p.is_file() and p.suffix in TEXT_SUFFIXES]


def prose_lines(path):
    """The lines of a markdown file outside fenced code blocks."""
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield line


def slug(heading):
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation other than '-'
    and '_' dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)      # links: keep the text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor of a markdown file, with GitHub's -1, -2 suffixes for repeated slugs."""
    seen = {}
    result = set()
    for line in prose_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        s = slug(m.group(2))
        n = seen.get(s, 0)
        result.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return result


def relative_links(path):
    for line in prose_lines(path):
        line = re.sub(r"`[^`]*`", "", line)      # inline code is not a link
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, mailto:, ...
                continue
            yield target


def spec_sections():
    return {int(m.group(1)) for line in prose_lines(SPEC)
            if (m := re.match(r"^##\s+(\d+)\.\s", line))}


def test_slug_follows_github():
    assert slug("5. Surrogate derivative") == "5-surrogate-derivative"
    assert slug("The neuron (Eqs. 10-14)") == "the-neuron-eqs-10-14"
    assert slug("`spikegrad.nn.LIF`: the layer") == "spikegradnnlif-the-layer"


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        try:
            dest.relative_to(ROOT)
        except ValueError:
            broken.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor:
            if dest.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not markdown")
            elif anchor not in anchors(dest):
                broken.append(f"{target}: no heading with anchor #{anchor} in "
                              f"{dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_spec_has_every_section():
    assert spec_sections() == set(range(10))


def test_spec_citations_name_existing_sections():
    sections = spec_sections()
    wrong = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for m in CITATION.finditer(line):
                for item in re.findall(RANGE, m.group(1)):
                    first, _, last = re.sub(r"\s", "", item).replace("\u2013", "-").partition("-")
                    first, last = int(first), int(last or first)
                    if first > last or any(n not in sections for n in range(first, last + 1)):
                        wrong.append(f"{path.relative_to(ROOT)}:{number}: {m.group(0)}")
                        break
    assert not wrong, "citations of sections docs/spec.md does not have:\n" + "\n".join(wrong)


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_development_history(doc):
    found = [f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
             for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
             for marker in HISTORY_MARKERS if marker in line.lower()]
    assert not found, "development history in a document:\n" + "\n".join(found)


# A path into the repository named in code or docs: a top-level directory of the tree, then
# path segments, ending in a file name with an extension (globs allowed: tests/cuda/test_*.py).
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:bindings|cpp|cmake|docs|pyref|tests|tools|\.ci)/[\w./*-]*[\w*]\.[a-z]+)\b")


def cited_paths():
    for path in tracked_text_files():
        if path.name == "CHANGELOG.md":       # history may name files that are gone
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for m in REPO_PATH.finditer(line):
                yield path, number, m.group(1)


def test_cited_paths_exist():
    """Every repository path a comment or document names (tests/ops/test_ops.py,
    cpp/include/spikegrad/options.hpp, ...) exists, so that a reader can open it."""
    missing = []
    for path, number, cited in cited_paths():
        if not any(ROOT.glob(cited)) and not (ROOT / cited).exists():
            missing.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)
