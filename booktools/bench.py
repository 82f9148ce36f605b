"""Benchmark: execute every chapter, report seconds and peak memory, write the table as JSON.

This is a measurement, not a test: timings depend on the machine and on what else runs on it.
Budgets (two-core CPU): each chapter at most 60 s (chapter 9: 90 s), the whole book 5 minutes.

Usage::

    python -m booktools.bench                 # every chapter, table + _build/bench.json
    python -m booktools.bench 01_autodiff     # chapters whose name contains the argument
    python -m booktools.bench --repeat 2      # also report whether printed numbers repeat
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from booktools import ROOT
from booktools.notebooks import chapters, read_chapter

BUDGET_S = {"09": 90.0}
DEFAULT_BUDGET_S = 60.0
BOOK_BUDGET_S = 300.0


def execute(chapter: Path) -> nbformat.NotebookNode:
    """Execute one chapter, read as the site build reads it, in a fresh kernel."""
    from nbclient import NotebookClient

    nb = read_chapter(chapter)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    return nb


def execute_once(chapter: Path) -> dict:
    """Execute one chapter and measure it (run in a child process, see ``main``)."""
    start = time.perf_counter()
    nb = execute(chapter)
    seconds = time.perf_counter() - start
    # The kernel is this process's child; ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mib = peak / 2**20 if platform.system() == "Darwin" else peak / 1024
    return {"seconds": round(seconds, 2), "peak_mib": round(peak_mib, 1),
            "numbers": reported_numbers(nb)}


# A line that mentions one of these reports a timing, which may differ between runs.
TIMING_LINE = re.compile(r"(?<![A-Za-z'])(ms|us|µs|s|seconds?|it/s|steps/s|tokens/s)\b|speed|time",
                         re.I)
# Glued values whose names contain one of these are timings too.
TIMING_NAME = re.compile(r"seconds|_ms|speed|time|minutes", re.I)
NUMBER = re.compile(r"-?\d+\.?\d*(?:e[-+]?\d+)?")
GLUE_TEXT = "application/papermill.record/text/plain"


def numbers_in(text: str) -> list[str]:
    """The numbers in text, to 10 significant digits, except on lines that report timings.

    Ten digits hide the last-bit differences that a change in the order of a floating-point
    sum can cause (the text shows four digits at most); memory addresses are skipped.
    """
    numbers = []
    for line in text.splitlines():
        if not TIMING_LINE.search(line):
            found = NUMBER.findall(re.sub(r"0x[0-9a-fA-F]+", "", line))
            numbers += [f"{float(n):.10g}" for n in found]
    return numbers


def reported_numbers(nb: nbformat.NotebookNode) -> list[list]:
    """[cell, where, numbers] for every number an executed chapter printed, showed or glued.

    These are what a reader sees, so executing a chapter twice must give the same ones.
    Timings are left out: lines that mention seconds or speed, and glued values whose names
    say they are timings. A cell's printed text counts as one output, however the kernel
    happened to split it into stream messages.
    """
    found = []
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    for index, cell in enumerate(code_cells, start=1):
        stdout = "".join(o.get("text", "") for o in cell.get("outputs", [])
                         if o.get("output_type") == "stream" and o.get("name") == "stdout")
        outputs = [("stdout", stdout)]
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if GLUE_TEXT in data:
                name = output.get("metadata", {}).get("scrapbook", {}).get("name", "glue")
                outputs.append((name, "" if TIMING_NAME.search(name) else data[GLUE_TEXT]))
            elif output.get("output_type") in ("execute_result", "display_data"):
                outputs.append(("result", data.get("text/plain", "")))
        found += [[index, where, numbers_in(text)] for where, text in outputs
                  if numbers_in(text)]
    return found


def differences(first: list[list], second: list[list]) -> list[str]:
    """Readable differences between two ``reported_numbers`` lists (empty if they agree)."""
    out = [f"code cell {a[0]} ({a[1]}): {a[2][:10]} then {b[2][:10]}"
           for a, b in zip(first, second) if a != b]
    if len(first) != len(second):
        out.append(f"{len(first)} outputs with numbers, then {len(second)}")
    return out


def run_child(chapter: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "booktools.bench", "--child", str(chapter)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{chapter.name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute every chapter and time it.")
    parser.add_argument("names", nargs="*", help="only chapters whose file name contains these")
    parser.add_argument("--repeat", type=int, default=1, help="executions per chapter")
    parser.add_argument("--json", default=str(ROOT / "_build" / "bench.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(execute_once(Path(args.child))))
        return 0
    selected = [c for c in chapters() if not args.names or any(n in c.name for n in args.names)]
    rows, ok = [], True
    for chapter in selected:
        runs = [run_child(chapter) for _ in range(args.repeat)]
        budget = BUDGET_S.get(chapter.name[:2], DEFAULT_BUDGET_S)
        row = {"chapter": chapter.stem, "seconds": min(r["seconds"] for r in runs),
               "peak_mib": max(r["peak_mib"] for r in runs), "budget_s": budget}
        if args.repeat > 1:
            diffs = [d for r in runs[1:] for d in differences(runs[0]["numbers"], r["numbers"])]
            row["deterministic"], row["differences"] = not diffs, diffs
            ok &= not diffs
        ok &= row["seconds"] <= budget
        rows.append(row)
        print(f"{row['chapter']:<20} {row['seconds']:7.1f} s  {row['peak_mib']:7.0f} MiB"
              + (f"  deterministic: {row['deterministic']}" if "deterministic" in row else ""),
              flush=True)
        for line in row.get("differences", [])[:10]:
            print(f"    {line}")
    total = sum(r["seconds"] for r in rows)
    ok &= total <= BOOK_BUDGET_S
    print(f"{'total':<20} {total:7.1f} s  (budget {BOOK_BUDGET_S:.0f} s)")
    report = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
                         f"{__import__('os').cpu_count()} cores", "python": sys.version.split()[0],
              "chapters": rows, "total_s": round(total, 1)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
