"""Time dlbook's scalar engine against micrograd's on the same small MLP (issue 14, item 8).

Both engines build the same network, a 2-16-16-1 ReLU MLP, and run forward and backward on the
same 20 points with a squared-error loss; only the ``Value`` class differs. The script prints
the median CPU time of each and the speed ratio (micrograd's time / ours: above 1 means dlbook is
faster). micrograd is not a dependency of the book; fetch it into a folder first:

    pip download micrograd --no-deps -d /tmp/mg && unzip -o /tmp/mg/micrograd-*.whl -d /tmp/mg/src
    OMP_NUM_THREADS=1 python tools/bench_autograd.py --micrograd /tmp/mg/src

Not part of the test suite; it is for developers.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from dlbook.autograd import Value as DlbookValue

SIZES = (2, 16, 16, 1)
N_POINTS = 20


def make_weights(seed: int = 0) -> list[tuple[list[list[float]], list[float]]]:
    """Plain-float weights and biases of every layer, shared by both engines."""
    rng = random.Random(seed)
    return [([[rng.uniform(-1, 1) for _ in range(n_in)] for _ in range(n_out)],
             [0.0] * n_out) for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True)]


def make_data(seed: int = 1) -> tuple[list[list[float]], list[float]]:
    rng = random.Random(seed)
    xs = [[rng.uniform(-2, 2) for _ in range(SIZES[0])] for _ in range(N_POINTS)]
    return xs, [1.0 if x[0] * x[1] > 0 else -1.0 for x in xs]


def step(value_cls, weights, xs, ys) -> float:
    """One forward and backward pass of the MLP built from ``value_cls``; returns the loss."""
    layers = [([[value_cls(w) for w in row] for row in w_rows], [value_cls(b) for b in biases])
              for w_rows, biases in weights]
    loss = value_cls(0.0)
    for x, y in zip(xs, ys, strict=True):
        h = x
        for i, (w_rows, biases) in enumerate(layers):
            out = []
            for row, b in zip(w_rows, biases, strict=True):
                z = b
                for wi, hi in zip(row, h, strict=True):
                    z = z + wi * hi
                out.append(z if i == len(layers) - 1 else z.relu())
            h = out
        loss = loss + (h[0] - y) ** 2
    loss.backward()
    return loss.data


def paired_times(engines: list, repeats: int) -> list[list[float]]:
    """Time each engine ``repeats`` times, alternating between them so that a busy moment of the
    machine slows both alike; returns one list of seconds per engine. The clock is the process's
    CPU time, which a shared machine disturbs less than wall-clock time (the work is one
    thread of pure Python, so the two agree on a quiet machine)."""
    weights, (xs, ys) = make_weights(), make_data()
    times: list[list[float]] = [[] for _ in engines]
    for r in range(repeats):
        order = range(len(engines)) if r % 2 == 0 else reversed(range(len(engines)))
        for i in order:
            start = time.process_time()
            step(engines[i], weights, xs, ys)
            times[i].append(time.process_time() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micrograd", help="folder that holds the micrograd package")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per engine and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the median ratio over "
                        "rounds is reported")
    args = parser.parse_args()
    if args.micrograd:
        sys.path.insert(0, args.micrograd)
    try:
        from micrograd.engine import Value as MicrogradValue
    except ImportError:
        sys.exit("micrograd is not importable; see this script's docstring for how to fetch it")
    weights, (xs, ys) = make_weights(), make_data()
    ours, theirs = step(DlbookValue, weights, xs, ys), step(MicrogradValue, weights, xs, ys)
    if abs(ours - theirs) > 1e-9 * max(1.0, abs(theirs)):
        sys.exit(f"the engines disagree: loss {ours} (dlbook) and {theirs} (micrograd)")
    ratios = []
    for r in range(args.rounds):
        ours_s, theirs_s = paired_times([DlbookValue, MicrogradValue], args.repeats)
        t_ours, t_theirs = statistics.median(ours_s), statistics.median(theirs_s)
        ratios.append(t_theirs / t_ours)
        print(f"round {r + 1}: dlbook {1e3 * t_ours:.2f} ms, micrograd {1e3 * t_theirs:.2f} ms, "
              f"speed ratio {ratios[-1]:.2f}x")
    print(f"median speed ratio (micrograd time / dlbook time): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
