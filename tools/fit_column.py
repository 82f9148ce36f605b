"""Make the code a reader sees fit the site's column (88 characters a line).

    python tools/fit_column.py dlbook/*.py book/0*.md [--check]

Python files are formatted with ``ruff format --line-length 88``; the code cells of MyST
chapters are formatted the same way, one cell at a time. Lines that a formatter leaves long are
comments and docstrings: a trailing comment moves onto its own lines above the code, and a long
comment or docstring line is wrapped at the same indentation. Long string literals are left for a
person (the tool lists them). tests/test_book.py checks the result for every chapter.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

COLUMN = 88
RUFF = [sys.executable, "-m", "ruff", "format", "--quiet", f"--line-length={COLUMN}"]


def ruff_format(source: str) -> str | None:
    """``source`` formatted by ruff, or None when ruff cannot parse it."""
    done = subprocess.run(RUFF + ["--stdin-filename", "cell.py", "-"], input=source,
                          capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def wrap(text: str, indent: str, prefix: str = "") -> list[str]:
    """``text`` wrapped to the column at ``indent`` + ``prefix`` (for example ``"# "``)."""
    bullet = re.match(r"^([-*] |\d+\. )", text)
    later = " " * len(bullet[1]) if bullet else ""
    return textwrap_whole(text, width=COLUMN, initial_indent=indent + prefix,
                          subsequent_indent=indent + prefix + later) or [indent + prefix]


def comment_tokens(source: str) -> dict[int, int]:
    """Line number (1-based) -> column of the comment on that line; docstring lines too."""
    comments = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return {}
    return comments


def docstring_lines(source: str) -> set[int]:
    """Line numbers (1-based) inside triple-quoted strings that stand alone as statements."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    lines = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            lines.update(range(node.lineno + 1, node.end_lineno + 1))
            lines.add(node.lineno)
    return lines


def string_tokens(source: str) -> dict[int, list[tuple[int, int, str, int]]]:
    """Line -> [(start column, end column, text, bracket depth)] of one-line string tokens."""
    strings, depth = {}, 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
            elif token.type == tokenize.STRING and token.start[0] == token.end[0]:
                strings.setdefault(token.start[0], []).append(
                    (token.start[1], token.end[1], token.string, depth))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return {}
    return strings


def split_string(line: str, strings: list[tuple[int, int, str, int]]) -> list[str] | None:
    """A long one-line string inside brackets split in two at a space (implicit joining)."""
    for start, end, text, depth in strings:
        if end <= COLUMN or depth == 0:
            continue
        match = re.match(r"^([rRbBfFuU]*)(\"|')", text)
        if match is None or text.startswith(match[0] * 3):
            continue
        prefix, quote = match[1], match[2]
        body = text[len(match[0]):-1]
        braces, best = 0, None
        for k, char in enumerate(body):
            braces += (char == "{") - (char == "}")
            column = start + len(match[0]) + k + 2  # through the space, then the quote
            if char == " " and braces == 0 and column <= COLUMN and 0 < k < len(body) - 1:
                best = k
        if best is None:
            continue
        first = f"{prefix}{quote}{body[:best + 1]}{quote}"
        second = f"{prefix}{quote}{body[best + 1:]}{quote}"
        return [line[:start] + first, " " * start + second + line[end:]]
    return None


ENTRY = re.compile(
    r"^\s*([-*] |\d+\. |[\w*.]+(,\s*[\w*.]+)*( \([^)]*\))?: |>>> |\.\. |[A-Z]\w*:$)")
# spans that must not be broken across lines: ``literals``, `roles`, $math$
UNBREAKABLE = re.compile(r"``.+?``|`[^`]+`|\$[^$]+\$")
NBSP = "\u00a0"


def textwrap_whole(text: str, **options) -> list[str]:
    """textwrap.wrap that never breaks inside a literal, a role or inline math."""
    guarded = UNBREAKABLE.sub(lambda m: m[0].replace(" ", NBSP), text)
    lines = textwrap.wrap(guarded, break_long_words=False, break_on_hyphens=False, **options)
    return [line.replace(NBSP, " ") for line in lines]
QUOTES = ('"' * 3, "'" * 3)
# comments that tools read on the line they belong to: they stay trailing
DIRECTIVE = re.compile(r"^(?P<directive>#\s*(noqa(:\s*[A-Z]+\d+(,\s*[A-Z]+\d+)*)?|type:\s*\S+"
                       r"|fmt:\s*\w+|pragma:[\w ]+?))(?P<why>(\s.*)?)$")


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def paragraph(lines: list[str], i: int, kind: dict[int, str]) -> int:
    """The end (exclusive) of the paragraph that starts at line i: lines of the same kind
    (comment or docstring), not blank, continuing at one indentation, none starting an entry."""
    if kind.get(i) == "comment":
        def body(k: int) -> str:
            return lines[k].lstrip()[1:].strip()
        j = i + 1
        while (j < len(lines) and kind.get(j) == "comment" and body(j)
               and indent_of(lines[j]) == indent_of(lines[i]) and not ENTRY.match(body(j))):
            j += 1
        return j
    j, hang = i + 1, None
    while j < len(lines) and kind.get(j) == "doc" and lines[j].strip():
        if ENTRY.match(lines[j]) or lines[j].strip().startswith(QUOTES):
            break
        if hang is None:
            if indent_of(lines[j]) < indent_of(lines[i]):
                break
            hang = indent_of(lines[j])
        elif indent_of(lines[j]) != hang:
            break
        j += 1
    return j


def reflow(lines: list[str], i: int, j: int, kind: str) -> list[str]:
    """Lines i..j-1 (one paragraph) wrapped again as one text at their indentation."""
    first = " " * indent_of(lines[i])
    if kind == "comment":
        return wrap(" ".join(x.lstrip()[1:].strip() for x in lines[i:j]), first, "# ")
    later = " " * (indent_of(lines[i + 1]) if j > i + 1 else indent_of(lines[i]))
    text = " ".join(x.strip() for x in lines[i:j])
    bullet = re.match(r"^([-*] |\d+\. )", text)
    if bullet and j == i + 1:
        later = first + " " * len(bullet[1])
    elif ENTRY.match(lines[i]) and j == i + 1:  # an "Args:" entry: continue indented
        later = first + "    "
    return textwrap_whole(text, width=COLUMN, initial_indent=first, subsequent_indent=later)


def fix_long_lines(source: str) -> str:
    """Move trailing comments above their code; re-wrap comment and docstring paragraphs
    that have a long line; split a long string inside brackets in two."""
    comments = comment_tokens(source)
    docs = docstring_lines(source)
    strings = string_tokens(source)
    lines = source.split("\n")
    kind = {}
    for k, line in enumerate(lines):
        column = comments.get(k + 1)
        if column is not None and line[:column].strip() == "":
            kind[k] = "comment"
        elif k + 1 in docs and not line.lstrip().startswith(">>>"):
            kind[k] = "doc"
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if i in kind and (not line.strip() or re.match(r"^\s*[A-Z]\w*:\s*$", line)):
            out.append(line)  # a blank line or a section header ("Returns:") stays alone
            i += 1
            continue
        if i in kind:
            j = paragraph(lines, i, kind)
            long = any(len(x) > COLUMN for x in lines[i:j])
            out += reflow(lines, i, j, kind[i]) if long else lines[i:j]
            i = j
            continue
        column = comments.get(i + 1)
        directive = DIRECTIVE.match(line[column:]) if column is not None else None
        if len(line) > COLUMN and directive:  # "# noqa: F401 (why)": the why goes above
            if directive["why"].strip():
                out += wrap(directive["why"].strip(" ()"), " " * indent_of(line), "# ")
            out.append(line[:column].rstrip() + "  " + directive["directive"].strip())
        elif len(line) > COLUMN and column is not None:  # code, then a comment: comment above
            out += wrap(line[column:].lstrip("#").strip(), " " * indent_of(line), "# ")
            out.append(line[:column].rstrip())
        elif len(line) > COLUMN and split_string(line, strings.get(i + 1, [])):
            out += split_string(line, strings[i + 1])
        else:
            out.append(line)
        i += 1
    return "\n".join(out)


def fit_python(source: str) -> str:
    """A Python module or cell formatted to the column (unchanged when ruff cannot parse it)."""
    if ruff_format(source) is None:
        return source
    # Trailing comments move above their code first, so ruff does not wrap code around them.
    formatted = ruff_format(fix_long_lines(source)) or ruff_format(source)
    for _ in range(4):  # each pass splits a string once more; ruff then re-joins what fits
        fixed = fix_long_lines(formatted)
        again = ruff_format(fixed)
        if again is None or again == formatted:
            return fixed if again is None else again
        formatted = again
    return formatted


CELL = re.compile(r"^(`{3,})\{code-cell\}")


def fit_chapter(text: str) -> str:
    """Every code cell of a MyST chapter formatted to the column; the rest unchanged."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        match = CELL.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        if j < len(lines) and lines[j].strip() == "---":
            j = lines.index("---", j + 1) + 1
        while j < len(lines) and lines[j].startswith(":"):
            j += 1
        if j < len(lines) and lines[j].strip() == "" and j > i + 1:
            j += 1
        end = next(k for k in range(j, len(lines)) if lines[k].rstrip() == match[1])
        code = "\n".join(lines[j:end])
        fitted = fit_python(code + "\n").rstrip("\n") if code.strip() else code
        out += lines[i:j] + (fitted.split("\n") if code.strip() else lines[j:end])
        out.append(lines[end])
        i = end + 1
    return "\n".join(out)


def long_lines(text: str) -> int:
    return sum(len(line) > COLUMN for line in text.split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    for path in args.paths:
        text = path.read_text()
        fitted = fit_chapter(text) if path.suffix == ".md" else fit_python(text)
        print(f"{path}: {long_lines(text)} -> {long_lines(fitted)} long lines")
        if not args.check and fitted != text:
            path.write_text(fitted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
