"""Do the book's claims hold on other seeds and thread counts? Execute chapters and see.

Every chapter asserts its claims with margins. A margin is only honest if it holds beyond the
one numerical path the book is built on, so this script executes each chapter under several
settings, each in a fresh kernel:

- PyTorch with 1, 2 and 4 intra-op threads, seed offset 0. ``OMP_NUM_THREADS`` alone is not
  enough: PyTorch caps the thread count it reads from it at the number of cores (asking for 4
  on a 2-core machine gives 2), so each kernel also runs ``torch.set_num_threads`` from an
  IPython startup file, and the run records the count the chapter actually saw;
- training seed offsets 1 and 2 with one thread: ``DLBOOK_SEED_OFFSET`` is added to every
  ``dlbook.set_seed`` call (the chapters' and the training loops'), so every model starts from
  other weights and sees other batches, while the data sets stay the same.

For each chapter and setting it records whether every assert held (and the first failure),
and every glued number that is not a timing. It prints a table and writes
``_build/spread.json``, whose spread (min and max per glued number) is what the chapters'
margins are set from. It takes a while: about five executions of every chapter.

Usage::

    python -m booktools.spread                  # every chapter, every setting
    python -m booktools.spread 06 07            # chapters whose name contains 06 or 07
    python -m booktools.spread --threads 1 2 4 --seeds 0   # threads only
    python -m booktools.spread --merge a.json b.json --json booktools/spread_record.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from booktools import ROOT
from booktools.bench import GLUE_TEXT, TIMING_NAME
from booktools.notebooks import chapters

SEED_OFFSET_VARIABLE = "DLBOOK_SEED_OFFSET"
THREADS_PROBE = "import torch\nprint('threads', torch.get_num_threads())"


def settings(threads: list[int], seeds: list[int]) -> list[dict]:
    """Thread counts at seed offset 0, then seed offsets other than 0 at one thread."""
    out = [{"threads": t, "seed_offset": 0} for t in threads]
    out += [{"threads": 1, "seed_offset": s} for s in seeds if s != 0]
    return out


def glued_numbers(nb) -> dict[str, float]:
    """Every glued number of an executed chapter that is not a timing."""
    found = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {})
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if GLUE_TEXT in data and name and not TIMING_NAME.search(name):
                try:
                    found[name] = float(data[GLUE_TEXT].strip().strip("'\""))
                except ValueError:
                    pass
    return found


def execute_child(chapter: Path) -> dict:
    """Execute one chapter (in a child process with the setting in its environment)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from booktools.notebooks import read_chapter

    nb = read_chapter(chapter)
    nb.cells.append(nbformat.v4.new_code_cell(THREADS_PROBE))  # the count the chapter saw
    start = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(chapter.parent)}}).execute()
    except CellExecutionError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        error = " | ".join(lines[-3:])[-600:]
    seconds = round(time.perf_counter() - start, 1)
    probe = nb.cells.pop()
    seen = [o.get("text", "") for o in probe.get("outputs", []) if o.get("name") == "stdout"]
    threads_seen = int(seen[0].split()[-1]) if error is None and seen else None
    return {"ok": error is None, "error": error, "seconds": seconds,
            "threads_seen": threads_seen, "glued": glued_numbers(nb)}


def run(chapter: Path, setting: dict) -> dict:
    threads = setting["threads"]
    with tempfile.TemporaryDirectory() as ipython_dir:
        startup = Path(ipython_dir) / "profile_default" / "startup"
        startup.mkdir(parents=True)
        (startup / "00-threads.py").write_text(
            f"import torch\ntorch.set_num_threads({threads})\n")
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
                   IPYTHONDIR=ipython_dir)
        env[SEED_OFFSET_VARIABLE] = str(setting["seed_offset"])
        out = subprocess.run(
            [sys.executable, "-m", "booktools.spread", "--child", str(chapter)],
            capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        return {"ok": False, "error": out.stderr[-600:], "seconds": None, "glued": {}}
    result = json.loads(out.stdout.splitlines()[-1])
    if result["ok"] and result["threads_seen"] != threads:
        result.update(ok=False, error=f"asked for {threads} threads, the chapter ran with "
                                      f"{result['threads_seen']}")
    return result


def spread(runs: list[dict]) -> dict[str, list[float]]:
    """[min, max] of every glued number over the runs that reported it."""
    names = sorted({n for r in runs for n in r["glued"]})
    return {n: [min(r["glued"][n] for r in runs if n in r["glued"]),
                max(r["glued"][n] for r in runs if n in r["glued"])] for n in names}


def merge(paths: list[Path], out: Path) -> int:
    """Combine reports of different chapters (later files win) and record when and where."""
    report = {}
    for path in paths:
        report.update({k: v for k, v in json.loads(path.read_text()).items() if k != "_meta"})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    report["_meta"] = {"measured": time.strftime("%Y-%m-%d"), "commit": commit,
                       "chapters": sorted(k for k in report if k != "_meta")}
    out.write_text(json.dumps(report, indent=1))
    failed = [(k, r["threads"], r["seed_offset"]) for k, v in report.items() if k != "_meta"
              for r in v["runs"] if not r["ok"]]
    print(f"wrote {out}: {len(report) - 1} chapters, failed runs: {failed or 'none'}")
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only chapters whose file name contains these")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=str(ROOT / "_build" / "spread.json"))
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="combine earlier reports into --json instead of executing")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.merge:
        return merge([Path(p) for p in args.merge], Path(args.json))
    if args.child:
        print(json.dumps(execute_child(Path(args.child))))
        return 0
    selected = [c for c in chapters() if not args.names or any(n in c.name for n in args.names)]
    report, ok = {}, True
    for chapter in selected:
        runs = []
        for setting in settings(args.threads, args.seeds):
            result = {**setting, **run(chapter, setting)}
            runs.append(result)
            ok &= result["ok"]
            status = "ok" if result["ok"] else f"FAILED: {result['error']}"
            print(f"{chapter.stem:<16} threads {setting['threads']}  seed +{setting['seed_offset']}"
                  f"  {result['seconds']} s  {status}", flush=True)
        report[chapter.stem] = {"runs": runs, "spread": spread(runs)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
