"""MyST markdown as plain markdown, for the Colab notebooks (see ``booktools.notebooks``).

Jupyter and Colab render CommonMark with ``$math$``, not MyST: a role such as
``{cite:p}`key``` or a directive such as ``:::{note}`` would show as raw text. ``to_markdown``
rewrites a chapter's markdown the way the website shows it:

- glued values (``{glue:text}`name:.2f```, ``{glue}``, ``{glue:md}``) become their values,
  formatted as myst-nb formats them; a value that is not known names the code computing it;
- ``{doc}``, ``{ref}``, ``{numref}`` and ``{eq}`` become links to the website's pages
  (``booktools.site_url``), ``{term}`` and other inline roles their text;
- ``{cite:p}`` and ``{cite:t}`` become "(Goodfellow et al., 2016)" and "Goodfellow et al.
  (2016)", linked to the website's bibliography (names and years from ``references.bib``);
- target labels ``(name)=`` and ``%`` comments are dropped; admonitions become quotes, ``math``
  ``$$`` blocks, figures images; every other directive its content.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from booktools import ROOT, repository_branch, repository_url, site_url

GLUE_MIMES = ("text/plain", "text/markdown")  # the glued mime types the text can show
# What the Colab notebooks must not contain in their markdown: a role, a directive, a label.
MYST_ROLE = re.compile(r"(?<![`\\])\{(?P<name>[A-Za-z][\w:+-]*)\}`(?P<content>[^`]*)`")
MYST_DIRECTIVE = re.compile(r"^[ \t]*(?:`{3,}|~{3,}|:{3,})\{", re.MULTILINE)
MYST_LABEL = re.compile(r"^[ \t]*\((?P<label>[^()\s]+)\)=[ \t]*$", re.MULTILINE)

# A glued value the notebook does not know, shown as a reference: *⟨name, computed above⟩*
GLUE_REFERENCE = re.compile(r"\*⟨(?P<name>\w+)[^⟩]*⟩\*")

Glued = dict  # glue name -> {mime type: value}, mime types from GLUE_MIMES

# --------------------------------------------------------------------------------------------
# What a chapter's markdown refers to elsewhere in the book


@dataclass(frozen=True)
class Target:
    """Where a label points: a page (docname such as ``book/01_autodiff``), an anchor on it,
    and the text a reference to it shows."""

    doc: str
    anchor: str
    title: str


@dataclass(frozen=True)
class BookIndex:
    """What converting one chapter needs to know about the whole book."""

    site: str  # the website, ending in "/"
    repository: str  # the repository's URL
    branch: str  # the branch Colab and raw files are read from
    titles: dict  # docname -> the page's title
    targets: dict  # label -> Target (sections, figures, equations)
    citations: dict  # bibtex key -> ("Goodfellow et al.", "2016")
    bibliography: str | None  # docname of the page with the {bibliography}

    def page_url(self, doc: str, anchor: str = "") -> str:
        return f"{self.site}{doc}.html" + (f"#{anchor}" if anchor else "")

    def file_url(self, path: str) -> str:
        """A repository file as raw bytes (for images) from the published branch."""
        owner_name = self.repository.split("github.com/", 1)[-1]
        return f"https://raw.githubusercontent.com/{owner_name}/{self.branch}/{path}"


HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$")
EQUATION_LABEL = re.compile(r"^(?P<math>.*\$\$)[ \t]*\((?P<label>[^()\s]+)\)[ \t]*$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")


CODE_FENCE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})"
                        r"(\{code-cell\}|\{code-block\}|\{code\}|[^{`]*$)")


def code_lines(lines: list[str]) -> set[int]:
    """Indices of the lines inside code blocks, where a ``#`` starts a comment, not a heading."""
    inside, i = set(), 0
    while i < len(lines):
        fence = CODE_FENCE.match(lines[i])
        if fence:
            end = closing_line(lines, i, fence["fence"])
            inside.update(range(i, end + 1))
            i = end
        i += 1
    return inside


def directive_option(lines: list[str], start: int, key: str) -> str | None:
    """The ``:key:`` option of the directive opened on ``lines[start]``, if it has one."""
    for line in lines[start + 1:]:
        option = OPTION.match(line.strip())
        if option is None:
            return None
        if option["key"] == key:
            return option["value"]
    return None


def page_targets(doc: str, text: str) -> tuple[str, dict]:
    """The title of one MyST page and the labels it defines: ``(label)=`` before a heading,
    labelled equations (numbered in page order, as Sphinx numbers them) and named figures."""
    lines = text.split("\n")
    code = code_lines(lines)
    title, targets, equations = None, {}, 0
    for i, line in enumerate(lines):
        if i in code:
            continue
        heading, label = HEADING.match(line), MYST_LABEL.match(line)
        if heading and title is None:
            title = heading["title"]
        if label:
            following = HEADING.match(next((x for x in lines[i + 1:] if x.strip()), ""))
            targets[label["label"]] = Target(doc, label["label"],
                                             following["title"] if following else label["label"])
        equation = EQUATION_LABEL.match(line)
        equation = equation["label"] if equation else None
        if re.match(r"^[ \t]*(`{3,}|:{3,})\{math\}", line):
            equation = directive_option(lines, i, "label")
        if equation:
            equations += 1
            chapter = re.match(r"book/(\d+)_", doc)  # Sphinx numbers per chapter: (3.1)
            number = f"{int(chapter[1])}.{equations}" if chapter else f"{equations}"
            targets[equation] = Target(doc, f"equation-{equation}", f"({number})")
        if re.match(r"^[ \t]*(`{3,}|:{3,})\{(figure|table)\}", line):
            name = directive_option(lines, i, "name")
            if name:
                targets[name] = Target(doc, name, name)
    return title or doc.rsplit("/", 1)[-1], targets


def plain_latex(text: str) -> str:
    """BibTeX text as plain text: ``G{\\"u}ne{\\c{s}}`` -> ``Güneş``."""
    import latexcodec  # noqa: F401 (registers the "ulatex" codec; pybtex depends on it)

    return codecs.decode(text, "ulatex").replace("{", "").replace("}", "")


def cited_names(entry) -> str:
    """The authors as the site's author-year citations show them (one, two, or "et al.")."""
    persons = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [plain_latex(" ".join(p.prelast_names + p.last_names)) for p in persons]
    if not names:
        return plain_latex(entry.fields.get("title", "?"))
    if len(names) > 2 or names[-1] == "others":
        return f"{names[0]} et al."
    return " and ".join(names)


def read_citations(bibfile: Path) -> dict:
    """Every entry of the bibliography as ("Goodfellow et al.", "2016"), by key."""
    from pybtex.database import parse_file  # sphinxcontrib-bibtex's own parser

    if not bibfile.is_file():
        return {}
    entries = parse_file(str(bibfile)).entries
    return {key: (cited_names(e), plain_latex(e.fields.get("year", "n.d."))) for key, e in
            entries.items()}


@functools.lru_cache(maxsize=4)
def book_index(root: Path = ROOT) -> BookIndex:
    """Titles, labels and citations of every page of the book."""
    titles, targets, bibliography = {}, {}, None
    for page in sorted((root / "book").glob("*.md")):
        doc = page.relative_to(root).with_suffix("").as_posix()
        text = page.read_text(encoding="utf8")
        titles[doc], found = page_targets(doc, text)
        targets.update(found)
        if re.search(r"^(`{3,}|:{3,})\{bibliography\}", text, re.MULTILINE):
            bibliography = doc
    return BookIndex(site=site_url(root), repository=repository_url(root),
                     branch=repository_branch(root), titles=titles, targets=targets,
                     citations=read_citations(root / "references.bib"),
                     bibliography=bibliography)


# --------------------------------------------------------------------------------------------
# MyST markdown -> Jupyter markdown


@dataclass(frozen=True)
class Context:
    """One markdown cell being converted: its page, its place, and the chapter's glue."""

    book: BookIndex
    doc: str  # docname of the chapter, e.g. "book/01_autodiff"
    glued: Glued = field(default_factory=dict)  # values of the chapter's last execution
    glue_cells: dict = field(default_factory=dict)  # glue name -> index of the cell gluing it
    cell: int = 0  # index of this markdown cell among the chapter's cells


def glue_reference(name: str, ctx: Context) -> str:
    """What the notebook shows for a glued value it does not know: its name, and where the
    code that computes it is (the chapter was not executed since its code last changed)."""
    where = ctx.glue_cells.get(name)
    place = "" if where is None else (", computed above" if where < ctx.cell else
                                      ", computed below")
    return f"*⟨{name}{place}⟩*"


def pasted(kind: str, content: str, ctx: Context) -> str:
    """A ``{glue:...}`` role or directive as its value (or a reference, without one)."""
    from myst_nb.core.variables import format_plain_text

    from booktools.numbers import readable_number

    if kind == "text":
        key, spec = content.rsplit(":", 1) if ":" in content else (content, "s")
    else:  # "md" takes a markdown format after the colon, "any" nothing
        key, spec = content.split(":", 1)[0], ""
    key = key.strip()
    data = ctx.glued.get(key, {})
    if kind in ("md", "any") and "text/markdown" in data:
        return data["text/markdown"].strip()
    if kind != "md" and "text/plain" in data:
        try:
            return readable_number(format_plain_text(data["text/plain"], spec))
        except (TypeError, ValueError):
            return data["text/plain"]
    return glue_reference(key, ctx)


def titled_target(content: str) -> tuple[str | None, str]:
    """``text <target>`` -> ("text", "target"); ``target`` -> (None, "target")."""
    match = re.fullmatch(r"(?s)(?P<text>.*?)\s*<(?P<target>[^<>]+)>", content.strip())
    if match and match["text"]:
        return match["text"], match["target"].strip()
    return None, content.strip()


def doc_link(content: str, ctx: Context) -> str:
    """``{doc}`` -> a link to that page of the website."""
    text, target = titled_target(content)
    doc = target.lstrip("/") if target.startswith("/") else (
        f"{ctx.doc.rsplit('/', 1)[0]}/{target}" if "/" in ctx.doc else target)
    doc = re.sub(r"\.(md|ipynb)$", "", doc)
    return f"[{text or ctx.book.titles.get(doc, target)}]({ctx.book.page_url(doc)})"


def ref_link(role: str, content: str, ctx: Context) -> str:
    """``{ref}``, ``{numref}``, ``{eq}`` -> a link to the labelled section, figure or equation."""
    text, label = titled_target(content)
    target = ctx.book.targets.get(label)
    if target is None:
        return (text or label).replace("%s", label)
    shown = target.title
    if text:
        shown = text.replace("%s", target.title).replace("{number}", target.title).replace(
            "{name}", target.title)
    return f"[{shown}]({ctx.book.page_url(target.doc, target.anchor)})"


def citation(role: str, content: str, ctx: Context) -> str:
    """``{cite:p}`` -> "(Goodfellow et al., 2016; ...)", ``{cite:t}`` -> "Goodfellow et al.
    (2016)", each linking to the website's bibliography."""
    url = ctx.book.page_url(ctx.book.bibliography) if ctx.book.bibliography else None
    parts = []
    for key in (k.strip() for k in content.split(",")):
        names, year = ctx.book.citations.get(key, (key, "?"))
        text = f"{names} ({year})" if role.endswith(("t", "ts")) else f"{names}, {year}"
        parts.append(f"[{text}]({url})" if url else text)
    return ", ".join(parts) if role.endswith(("t", "ts")) else "(" + "; ".join(parts) + ")"


def term_link(content: str) -> str:
    """``{term}`` -> the term as the text shows it (the book has no glossary page)."""
    text, term = titled_target(content)
    return text or term


def replace_role(match: re.Match, ctx: Context) -> str:
    """One MyST role as plain markdown."""
    name, content = match["name"], match["content"]
    if name.startswith("glue"):
        kind = name.split(":", 1)[1] if ":" in name else "any"
        return pasted(kind or "any", content, ctx)
    if name == "doc":
        return doc_link(content, ctx)
    if name in ("ref", "numref", "eq"):
        return ref_link(name, content, ctx)
    if name.startswith("cite"):
        return citation(name, content, ctx)
    if name == "term":
        return term_link(content)
    if name == "math":
        return f"${content}$"
    if name in ("code", "literal", "file", "samp", "command", "kbd"):
        return f"`{content}`"
    if name in ("sub", "sup"):
        return f"<{name}>{content}</{name}>"
    if name == "download":
        text, path = titled_target(content)
        return f"[{text or path}]({ctx.book.repository}/blob/{ctx.book.branch}/{path})"
    return titled_target(content)[0] or content  # abbr, index, ...: the text alone


ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
               "warning": "Warning", "caution": "Caution", "attention": "Attention",
               "danger": "Danger", "error": "Error", "seealso": "See also"}
REMOVED = ("bibliography", "toctree", "tableofcontents", "contents", "index")


def quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.split("\n"))


def split_options(body: str) -> tuple[dict, str]:
    """A directive's body as its ``:key: value`` (or YAML) options and the rest."""
    lines = body.split("\n")
    options = {}
    if lines and lines[0].strip() == "---" and "---" in (x.strip() for x in lines[1:]):
        end = next(i for i, x in enumerate(lines[1:], 1) if x.strip() == "---")
        options = yaml.safe_load("\n".join(lines[1:end])) or {}
        lines = lines[end + 1:]
    else:
        while lines and OPTION.match(lines[0].strip()):
            option = OPTION.match(lines.pop(0).strip())
            options[option["key"]] = option["value"]
    return options, "\n".join(lines).strip("\n")


def render_directive(name: str, argument: str, body: str, ctx: Context) -> str:
    """One MyST directive as plain markdown."""
    options, body = split_options(body)
    if name in ADMONITIONS or name == "admonition":
        title = argument or ADMONITIONS.get(name, "Note")
        inner = to_markdown(body, ctx)
        return quote(f"**{title}**" + (f"\n\n{inner}" if inner else ""))
    if name == "math":
        return f"$$\n{body.strip()}\n$$"
    if name in ("code-block", "code", "sourcecode", "code-cell"):
        return f"```{argument}\n{body}\n```"
    if name in ("figure", "image"):
        path = argument if re.match(r"https?://", argument) else ctx.book.file_url(
            (Path(ctx.doc).parent / argument).as_posix())
        alt = options.get("alt", "figure")
        caption = to_markdown(body, ctx)
        return f"![{alt}]({path})" + (f"\n\n*{caption}*" if caption else "")
    if name == "glossary":
        return glossary(body, ctx)
    if name.startswith("glue"):
        kind = name.split(":", 1)[1] if ":" in name else "any"
        if kind == "figure":
            caption = to_markdown(body, ctx)
            return glue_reference(argument, ctx) + (f"\n\n*{caption}*" if caption else "")
        return pasted(kind, argument + (f":{options['format']}" if "format" in options else ""),
                      ctx)
    if name == "literalinclude":
        path = (Path(ctx.doc).parent / argument).as_posix()
        path = re.sub(r"[^/]+/\.\./", "", path)
        return f"*Source: [{path}]({ctx.book.repository}/blob/{ctx.book.branch}/{path})*"
    if name in REMOVED or name == "solution-end":
        return ""
    if name == "exercise":  # sphinx-exercise, numbered as on the site: "Exercise 4.2"
        inner = to_markdown(body, ctx)
        title = f"**Exercise {exercise_number(options.get('label', ''))}**"
        title += f" ({to_markdown(argument, ctx)})" if argument else ""
        return title + (f"\n\n{inner}" if inner else "")
    if name in ("solution-start", "solution"):
        title = f"**Solution to Exercise {exercise_number(argument)}**"
        inner = to_markdown(body if name == "solution" else "", ctx)
        return title + (f"\n\n{inner}" if inner else "")
    if name == "raw":
        return body if argument.strip() in ("html", "markdown") else ""
    inner = to_markdown(body, ctx)  # exercise, dropdown, margin, epigraph, ...: a quote
    title = f"**{argument or name.split(':')[-1].capitalize()}**"
    return quote(title + (f"\n\n{inner}" if inner else ""))


def exercise_number(label: str) -> str:
    """``ex-04_cnn-2`` (the labels ``booktools.exercises`` writes) -> ``4.2``."""
    found = re.fullmatch(r"ex-(\d+)_[\w-]*?-(\d+)", label.strip())
    return f"{int(found[1])}.{found[2]}" if found else label.strip()


def glossary(body: str, ctx: Context) -> str:
    """A ``{glossary}``: terms (unindented lines) with their definitions (indented)."""
    entries, term, definition = [], None, []
    for line in body.split("\n") + [""]:
        if line and not line[0].isspace():
            if term:
                entries.append((term, " ".join(definition)))
            term, definition = line.strip(), []
        elif line.strip():
            definition.append(line.strip())
    if term:
        entries.append((term, " ".join(definition)))
    return "\n".join(f"- **{t}**: {to_markdown(d, ctx)}" for t, d in entries)


DIRECTIVE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,}|:{3,})"
                            r"\{(?P<name>[^}\s]+)\}[ \t]*(?P<argument>.*?)[ \t]*$")
FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})")


def closing_line(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the fence opened at ``start`` (the last line if none)."""
    close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    return next((i for i in range(start + 1, len(lines)) if close.match(lines[i])),
                len(lines))


def to_markdown(source: str, ctx: Context) -> str:
    """MyST markdown -> the markdown Jupyter and Colab render, with no MyST syntax left."""
    lines, out, text = source.split("\n"), [], []

    def flush() -> None:
        if text:
            out.append(MYST_ROLE.sub(lambda m: replace_role(m, ctx), "\n".join(text)))
            text.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        directive, fence = DIRECTIVE_OPEN.match(line), FENCE_OPEN.match(line)
        if directive:
            flush()
            end = closing_line(lines, i, directive["fence"])
            indent = directive["indent"]
            body = "\n".join(x[len(indent):] if x.startswith(indent) else x.lstrip()
                             for x in lines[i + 1:end])
            rendered = render_directive(directive["name"], directive["argument"], body, ctx)
            out.append("\n".join(indent + x if x else x for x in rendered.split("\n")))
            i = end + 1
        elif fence:  # an ordinary code block: copied as it is
            flush()
            end = closing_line(lines, i, fence["fence"])
            out.append("\n".join(lines[i:end + 1]))
            i = end + 1
        else:
            equation = EQUATION_LABEL.match(line)
            if equation:  # "$$ (label)" closes a numbered equation: keep the "$$"
                text.append(equation["math"])
            elif not MYST_LABEL.match(line) and not line.startswith("%"):
                text.append(line)
            i += 1
    flush()
    # blocks apart by one blank line, so a quote does not continue the paragraph before it
    blocks = (re.sub(r"^([ \t]*\n)+", "", block).rstrip() for block in out)
    return "\n\n".join(block for block in blocks if block)
