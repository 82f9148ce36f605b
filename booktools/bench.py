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

from booktools import ROOT
from booktools.notebooks import chapters

BUDGET_S = {"09": 90.0}
DEFAULT_BUDGET_S = 60.0
BOOK_BUDGET_S = 300.0


def execute_once(chapter: Path) -> dict:
    """Execute one chapter in a fresh kernel (run in a child process, see ``main``)."""
    from myst_nb.core.read import read_myst_markdown_notebook
    from nbclient import NotebookClient

    nb = read_myst_markdown_notebook(chapter.read_text(encoding="utf8"), path=chapter)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    seconds = time.perf_counter() - start
    # The kernel is this process's child; ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mib = peak / 2**20 if platform.system() == "Darwin" else peak / 1024
    texts = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if o.get("output_type") == "stream" and o.get("name") == "stdout"]
    return {"seconds": round(seconds, 2), "peak_mib": round(peak_mib, 1), "stdout": texts}


def printed_numbers(texts: list[str]) -> list[str]:
    """The numbers a chapter printed, minus those on lines that report timings."""
    numbers = []
    for line in "".join(texts).splitlines():
        if re.search(r"\b(s|ms|seconds?|it/s|steps/s|tokens/s)\b|speed|time", line, re.I):
            continue
        numbers += re.findall(r"-?\d+\.?\d*(?:e-?\d+)?", line)
    return numbers


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
            row["deterministic"] = all(printed_numbers(r["stdout"]) ==
                                       printed_numbers(runs[0]["stdout"]) for r in runs)
            ok &= row["deterministic"]
        ok &= row["seconds"] <= budget
        rows.append(row)
        print(f"{row['chapter']:<20} {row['seconds']:7.1f} s  {row['peak_mib']:7.0f} MiB"
              + (f"  deterministic: {row['deterministic']}" if "deterministic" in row else ""),
              flush=True)
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
