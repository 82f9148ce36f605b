"""The ledger of claims: every number the book states, where, its value, and what checks it.

Every number in a chapter's prose is glued (``{glue:text}`name:.2f```) from the code beside
it, and a hidden cell asserts it. This module collects, for every glued value a chapter's text
shows:

- the chapter and the sentence it appears in;
- its value in this build: the newest execution of the chapter's code in the execution cache
  (``booktools.notebooks.cached_values``, the values the site shows);
- the asserts that check it, found by a heuristic (stated in :func:`checking_asserts`);
- its spread over seeds and thread counts, where ``_build/spread.json`` exists
  (``python -m booktools.spread``).

The site shows it as ``book/ledger.md`` (the ``ledger`` directive of ``booktools.sphinx_ext``
calls :func:`ledger_markdown` while the book is built, after the chapters were executed).

Usage: ``python -m booktools.ledger`` lists the glued numbers that no assert checks (exit 1 if
there are any); ``--markdown`` prints the page's table.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from booktools import ROOT
from booktools.bench import TIMING_NAME
from booktools.notebooks import cached_values, chapters, read_chapter

# {glue}`name`, {glue:}`name`, {glue:text}`name:.2f`, {glue:md}`name:myst`, {glue:any}`name`
GLUE_ROLE = re.compile(r"\{glue(?::(?P<kind>text|md|any)?)?\}`(?P<content>[^`]+)`")
GLUE_CALL = re.compile(r"\bglue\(\s*(?P<quote>[\"'])(?P<name>\w+)(?P=quote)\s*,")
FOOTNOTE_REF = re.compile(r"\[\^[^\]]+\]")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[*{$])")
ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|et al|Fig|Eq|cf|vs|resp|approx)\.$")
IGNORED_NAMES = set(dir(builtins)) | {"np", "torch", "math", "F", "glue"}


@dataclass(frozen=True)
class Claim:
    """One glued value as the text shows it."""

    chapter: str  # file stem, e.g. "04_cnn"
    name: str  # the glue name
    spec: str  # the format the text applies, e.g. ".2f" ("" for {glue:md} and {glue:any})
    kind: str  # "text", "md" or "any"
    sentence: str  # the sentence (MyST) it appears in
    line: int  # line of the chapter's .md where it appears (1-based)


@dataclass
class Checked:
    """A claim with what this build knows about it."""

    claim: Claim
    value: str | None = None  # as the page shows it; None: not executed in this build
    asserts: list[str] = field(default_factory=list)  # the assert lines found for it
    spread: tuple[float, float] | None = None  # (min, max) over seeds and thread counts


# --------------------------------------------------------------------------------------------
# Reading a chapter


def code_fences(lines: list[str]) -> set[int]:
    """Indices of lines that are code, not prose: code cells and plain fences (```python),
    but not directives whose body is markdown (```{figure} and its caption)."""
    inside, fence, found = False, "", set()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if inside:
            found.add(i)
            inside = stripped != fence
            continue
        match = re.match(r"^(`{3,}|~{3,})(.*)$", stripped)
        if match and (not match[2].startswith("{") or match[2].startswith("{code-cell}")):
            inside, fence = True, match[1]
            found.add(i)
    return found


def paragraph_at(lines: list[str], index: int) -> tuple[int, list[str]]:
    """The paragraph (lines between blank lines) holding line ``index``; a table row alone."""
    if lines[index].lstrip().startswith("|"):
        return index, [lines[index]]
    start = index
    while start > 0 and lines[start - 1].strip() and not lines[start - 1].startswith(
            ("```", ":::", "#")):
        start -= 1
    end = index
    while end + 1 < len(lines) and lines[end + 1].strip() and not lines[end + 1].startswith(
            ("```", ":::", "#")):
        end += 1
    return start, lines[start:end + 1]


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences (a heuristic that keeps "e.g." and "Fig." whole)."""
    pieces, current = [], ""
    for piece in SENTENCE_END.split(text):
        current = f"{current} {piece}".strip() if current else piece
        if not ABBREVIATIONS.search(current):
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def sentence_around(lines: list[str], index: int, role_text: str) -> str:
    """The sentence of the paragraph at line ``index`` that holds ``role_text``."""
    _, paragraph = paragraph_at(lines, index)
    text = " ".join(line.strip() for line in paragraph)
    text = re.sub(r"^(?:[-*+]|\d+\.)\s+", "", text)  # a list item's marker
    text = text.strip("| ")
    for sentence in split_sentences(text):
        if role_text in sentence:
            return sentence
    return text


def claims_in(chapter: Path) -> list[Claim]:
    """Every glued value the chapter's prose shows, in order of appearance."""
    lines = chapter.read_text(encoding="utf8").split("\n")
    skip = code_fences(lines)
    found = []
    for i, line in enumerate(lines):
        if i in skip:
            continue
        for match in GLUE_ROLE.finditer(line):
            kind = match["kind"] or "any"
            content = match["content"]
            if kind == "text" and ":" in content:
                name, spec = content.rsplit(":", 1)
            else:
                name, spec = content.split(":", 1)[0], ""
            found.append(Claim(chapter.stem, name.strip(), spec.strip(), kind,
                               sentence_around(lines, i, match.group(0)), i + 1))
    return found


# --------------------------------------------------------------------------------------------
# What checks a claim


def glued_expressions(nb) -> dict[str, tuple[int, str]]:
    """glue name -> (index of the code cell that glues it, source of the glued expression).

    A name built in a loop (``glue(f"opt_{key}_best", ...)``) is stored as a regular
    expression (``opt_\\w+_best``), which :func:`glue_source` matches against names."""
    found = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython magics: fall back to the text
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glue"
                    and len(node.args) >= 2):
                continue
            first, expression = node.args[0], ast.get_source_segment(cell.source, node.args[1])
            if isinstance(first, ast.Constant):
                key = str(first.value)
            elif isinstance(first, ast.JoinedStr):
                key = "re:" + "".join(re.escape(part.value) if isinstance(part, ast.Constant)
                                      else r"\w+" for part in first.values)
            else:
                continue
            found.setdefault(key, (index, expression or ""))
        for match in GLUE_CALL.finditer(cell.source):
            found.setdefault(match["name"], (index, ""))
    return found


def glue_source(name: str, glued: dict[str, tuple[int, str]]) -> tuple[int, str] | None:
    """Where and from what ``name`` is glued, also when the glue builds its name in a loop."""
    if name in glued:
        return glued[name]
    for key, place in glued.items():
        if key.startswith("re:") and re.fullmatch(key[3:], name):
            return place
    return None


def expression_names(source: str) -> set[str]:
    """The variables an expression reads (``100 * test_result["accuracy"]`` -> test_result)."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - IGNORED_NAMES


def assignments(nb) -> dict[str, set[str]]:
    """variable -> the variables its assignments read, over all code cells (``lam_small,
    lam_large = eigvalsh(hessian).tolist()``: both -> {"eigvalsh", "hessian"})."""
    found: dict[str, set[str]] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                reads = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                for target in targets:
                    for n in ast.walk(target):
                        if isinstance(n, ast.Name):
                            found.setdefault(n.id, set()).update(reads - IGNORED_NAMES)
    return found


def checking_asserts(nb, name: str, glued: dict[str, tuple[int, str]],
                     sources: dict[str, set[str]] | None = None) -> list[str]:
    """The assert lines that check the glued value ``name``.

    The heuristic: an ``assert`` statement in a code cell tagged ``remove-cell`` (the book's
    hidden checks) or in the cell that glues the value, at or after that cell, that mentions
    the glue name, a variable the glued expression reads (``glue("acc", 100 *
    result["accuracy"])``: ``acc`` or ``result``), or a variable those were computed from, one
    assignment back (``lam_large = eigvalsh(hessian)``: ``hessian``). It can credit an assert
    about a neighbouring number that reads the same variable; it cannot see a check made
    inside a helper function.
    """
    place = glue_source(name, glued)
    if place is None:
        return []
    where, expression = place
    direct = {name} | expression_names(expression)
    sources = assignments(nb) if sources is None else sources
    words = set(direct)
    for word in direct:
        words |= sources.get(word, set())
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(words))) + r")\b")
    found = []
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or index < where or (
                "remove-cell" not in tags and index != where):
            continue
        found += [s for s in assert_statements(cell.source) if pattern.search(s)]
    return found


def assert_statements(source: str) -> list[str]:
    """Every assert statement of a cell, whole (an assert can span lines), one line each."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [line.strip() for line in source.split("\n") if line.strip().startswith("assert ")]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            text = ast.get_source_segment(source, node) or ""
            found.append(re.sub(r"\s+", " ", text))
    return found


# --------------------------------------------------------------------------------------------
# Values, spread, the ledger


def formatted(data: dict, claim: Claim) -> str | None:
    """A glued value as the page shows it."""
    from myst_nb.core.variables import format_plain_text

    if claim.kind in ("md", "any") and "text/markdown" in data:
        return data["text/markdown"].strip()
    if "text/plain" not in data:
        return None
    try:
        return format_plain_text(data["text/plain"], claim.spec or "s")
    except (TypeError, ValueError):
        return data["text/plain"]


def read_spread(root: Path = ROOT) -> dict:
    """chapter stem -> glue name -> [min, max] over seeds and thread counts: from
    ``_build/spread.json`` (the latest ``python -m booktools.spread`` on this machine), else from
    the record committed with the book (``booktools/spread_record.json``); {} if neither."""
    path = root / "_build" / "spread.json"
    if not path.is_file():
        path = root / "booktools" / "spread_record.json"
    if not path.is_file():
        return {}
    report = json.loads(path.read_text(encoding="utf8"))
    return {stem: entry.get("spread", {}) for stem, entry in report.items()}


def ledger(root: Path = ROOT, with_values: bool = True) -> list[Checked]:
    """Every glued value the book's text shows, with its value, asserts and spread."""
    spread = read_spread(root)
    rows = []
    for chapter in chapters(root / "book"):
        nb = read_chapter(chapter)
        glued, sources = glued_expressions(nb), assignments(nb)
        values = (cached_values(nb, root) or {}) if with_values else {}
        for claim in claims_in(chapter):
            row = Checked(claim, asserts=checking_asserts(nb, claim.name, glued, sources))
            if claim.name in values:
                row.value = formatted(values[claim.name], claim)
            limits = spread.get(chapter.stem, {}).get(claim.name)
            if limits:
                row.spread = (float(limits[0]), float(limits[-1]))
            rows.append(row)
    return rows


def is_timing(name: str) -> bool:
    """A timing (its name says seconds, ms, speed, time or minutes): it depends on the machine
    and its load, so the book reports it and asserts only relations with a gap of 5x or more."""
    return bool(TIMING_NAME.search(name))


def unchecked(rows: list[Checked]) -> dict[str, list[str]]:
    """chapter -> glue names its text shows that no assert checks (each name once)."""
    missing: dict[str, list[str]] = {}
    for row in rows:
        names = missing.setdefault(row.claim.chapter, [])
        if not row.asserts and row.claim.name not in names and not is_timing(row.claim.name):
            names.append(row.claim.name)
    return {chapter: names for chapter, names in missing.items() if names}


def shown_sentence(row: Checked, values: dict[str, str]) -> str:
    """The sentence as MyST for the ledger page: glued values pasted in (the claim itself in
    bold), footnote references dropped."""

    def paste(match: re.Match) -> str:
        content = match["content"]
        name = (content.rsplit(":", 1)[0] if (match["kind"] == "text" and ":" in content)
                else content.split(":", 1)[0]).strip()
        value = values.get(name)
        shown = value if value is not None else f"⟨{name}⟩"
        return f"**{shown}**" if name == row.claim.name else shown

    return FOOTNOTE_REF.sub("", GLUE_ROLE.sub(paste, row.claim.sentence)).strip()


def number(value: float) -> str:
    return f"{value:.4g}"


def chapter_titles(root: Path = ROOT) -> dict[str, str]:
    """Chapter stem -> its title as written ("4. Convolutional networks")."""
    titles = {}
    for chapter in chapters(root / "book"):
        heading = re.search(r"^# (.+)$", chapter.read_text(encoding="utf8"), re.MULTILINE)
        titles[chapter.stem] = heading.group(1).strip() if heading else chapter.stem
    return titles


def ledger_markdown(rows: list[Checked], root: Path = ROOT) -> str:
    """The ledger as MyST: a section per chapter, a list-table row per glued value."""
    titles = chapter_titles(root)
    values = {(r.claim.chapter, r.claim.name): r.value for r in rows if r.value is not None}
    out = []
    for stem in dict.fromkeys(r.claim.chapter for r in rows):
        chapter_rows = [r for r in rows if r.claim.chapter == stem]
        chapter_values = {name: v for (s, name), v in values.items() if s == stem}
        out += [f"## {titles.get(stem, stem)}", "",
                f"{{doc}}`The chapter <{stem}>` states {len(chapter_rows)} glued values.", "",
                "```{list-table}", ":header-rows: 1", ":class: dlbook-ledger",
                ":widths: 46 12 30 12", "", "* - Where it is stated", "  - Value",
                "  - Checked by", "  - Spread (seeds, threads)"]
        for row in chapter_rows:
            sentence = shown_sentence(row, chapter_values).replace("\n", " ")
            checks = ("<br>".join(f"`{a.replace('`', '')}`" for a in row.asserts)
                      if row.asserts else "a timing: reported, not asserted"
                      if is_timing(row.claim.name) else "**no assert found**")
            value = f"`{row.value}`" if row.value is not None else "not executed in this build"
            spread = (f"{number(row.spread[0])} to {number(row.spread[1])}" if row.spread
                      else "")
            out += [f"* - {sentence} (`{row.claim.name}`, line {row.claim.line})",
                    f"  - {value}", f"  - {checks}", f"  - {spread}"]
        out += ["```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the ledger's table")
    args = parser.parse_args(argv)
    rows = ledger(ROOT, with_values=args.markdown)
    if args.markdown:
        print(ledger_markdown(rows))
        return 0
    missing = unchecked(rows)
    for chapter, names in missing.items():
        print(f"{chapter}: no assert found for {', '.join(names)}")
    print(f"{len(rows)} glued values in the text, "
          f"{sum(len(n) for n in missing.values())} names without an assert")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
