"""The torchrun path of ``python -m dlbook.ddp`` (the one a cluster uses) trains, and gives
the same losses as the path that spawns its own processes."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOSSES = re.compile(r"world size (\d+): steps 0-3, loss (\S+) -> (\S+),")


def _run(launcher: list[str]) -> tuple[str, str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [*launcher, "-m", "dlbook.ddp", "--task", "toy", "--steps", "3"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = LOSSES.search(out.stdout)
    assert found, out.stdout
    return found.groups()


def test_torchrun_trains_like_the_spawning_launcher():
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]
    spawned = _run([sys.executable])  # python -m dlbook.ddp spawns 2 processes itself
    launched = _run(torchrun)
    assert launched == spawned, (launched, spawned)
    assert launched[0] == "2" and float(launched[2]) < float(launched[1]), launched
