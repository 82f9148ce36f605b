"""Mutation testing for dlbook's core math: would the unit tests notice a wrong formula?

Each mutant changes one formula of the package (a flipped sign, a dropped square root, an
index off by one, a softmax over the wrong axis, ...). The tests of that module are run
against it: the mutant is *killed* when a test fails (or the run times out) and *survives*
when every test passes. A mutant whose original text no longer occurs exactly once in its
file is reported as *stale*, never silently skipped: the list below then needs updating.

The mutants are applied to a throw-away copy of the repository in a temporary directory
(the files ``git ls-files`` lists, tracked and untracked-but-not-ignored), never to the
working tree, and pytest runs in that copy with ``PYTHONPATH`` pointing at it, so the copy's
``dlbook`` shadows the editable install. A canary mutant (an import that raises) checks this
before anything else runs.

This is a developer tool, not part of CI. From the repository root:

    OMP_NUM_THREADS=1 .venv/bin/python tools/mutate.py              # every mutant
    OMP_NUM_THREADS=1 .venv/bin/python tools/mutate.py --only attention,sampling
    .venv/bin/python tools/mutate.py --list                          # list mutants, run nothing
    .venv/bin/python tools/mutate.py --ids sampling-5 diffusion-7    # chosen mutants

Options: ``--timeout S`` per mutant (default 300), ``--json PATH`` to save the results,
``--min-score F`` (default 0.95) sets the exit status, ``--keep`` keeps the temporary copy.
It uses only the standard library and the project's own pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    """One formula changed: ``original`` (which must occur exactly once in ``path``) becomes
    ``replacement``."""

    module: str  # key of TESTS: which tests to run
    path: str  # file, relative to the repository root
    original: str
    replacement: str
    description: str


def M(module: str, original: str, replacement: str, description: str,
      path: str | None = None) -> Mutation:
    """A mutation of ``dlbook/<module>.py``, or of ``path`` for code the module re-exports."""
    return Mutation(module, path or f"dlbook/{module}.py", original, replacement, description)


# Tests run against each module's mutants (files that do not exist are left out), the fast
# closed-form checks first, since pytest stops at the first failure.
TESTS = {
    "autograd": ["tests/test_autograd_math.py", "tests/test_autograd.py"],
    "cnn": ["tests/test_cnn_math.py", "tests/test_cnn.py"],
    "rnn": ["tests/test_rnn_math.py", "tests/test_rnn.py"],
    "attention": ["tests/test_attention_math.py", "tests/test_attention.py"],
    "diffusion": ["tests/test_diffusion_math.py", "tests/test_diffusion.py"],
    "sampling": ["tests/test_sampling_math.py", "tests/test_sampling.py"],
    "optim": ["tests/test_optim_math.py", "tests/test_optim.py"],
    "scale": ["tests/test_scale_math.py", "tests/test_scale.py"],
}

MUTATIONS = [
    # ----- autograd: the derivative rules -----
    M("autograd", "self.grad += other.data * out.grad", "self.grad += self.data * out.grad",
      "mul backward: d(ab)/da = a instead of b"),
    M("autograd", "self.grad += k * self.data ** (k - 1) * out.grad",
      "self.grad += k * self.data ** k * out.grad", "pow backward: exponent k instead of k - 1"),
    M("autograd", "self.grad += out.grad / self.data", "self.grad += out.grad * self.data",
      "log backward: times a instead of over a"),
    M("autograd", "self.grad += -math.sin(self.data) * out.grad",
      "self.grad += math.sin(self.data) * out.grad", "cos backward: sign flipped"),
    M("autograd", "self.grad += (1.0 - out.data**2) * out.grad",
      "self.grad += (1.0 - out.data) * out.grad", "tanh backward: 1 - t instead of 1 - t^2"),
    M("autograd", "self.grad += (self.data > 0) * out.grad",
      "self.grad += (self.data >= 0) * out.grad", "relu backward: derivative 1 at 0"),
    M("autograd", "self.dot * other.val + self.val * other.dot", "self.dot * other.val",
      "Dual product rule drops the a b' term"),
    M("autograd", "return Dual(t, (1.0 - t * t) * self.dot)",
      "return Dual(t, (1.0 + t * t) * self.dot)", "Dual tanh: 1 + t^2"),
    M("autograd", "node.grad = 0.0  # gradients", "pass  # gradients",
      "backward() does not reset earlier gradients"),
    # ----- cnn: convolution, im2col, its adjoint and the backward pass -----
    M("cnn", "return (size + 2 * padding - kernel_size) // stride + 1",
      "return (size + padding - kernel_size) // stride + 1", "output size counts padding once"),
    M("cnn", "j * sw : j * sw + kw]", "j * sh : j * sh + kw]",
      "conv loops: width uses the height stride"),
    M("cnn", "x = F.pad(x, (pw, pw, ph, ph))  # zeros around each image",
      "x = F.pad(x, (ph, ph, pw, pw))  # zeros around each image",
      "conv loops: height and width padding swapped"),
    M("cnn", "cols[:, :, u, v] = x[:, :, u : u + sh * out_h : sh, v : v + sw * out_w : sw]",
      "cols[:, :, u, v] = x[:, :, u : u + sh * out_h : sh, v : v + sw * out_w : sh]",
      "im2col: width step is the height stride"),
    M("cnn", "v : v + sw * out_w : sw] += cols[:, :, u, v]",
      "v : v + sw * out_w : sw] = cols[:, :, u, v]", "col2im overwrites overlapping windows"),
    M("cnn", "return x[:, :, ph : ph + h, pw : pw + w]", "return x[:, :, :h, :w]",
      "col2im crops the wrong corner"),
    M("cnn", "grad_b = grad_y.sum(dim=(0, 2))", "grad_b = grad_y.sum(dim=2).mean(dim=0)",
      "bias gradient averaged over the batch"),
    M("cnn", "grad_w = (grad_y @ cols.transpose(1, 2)).sum(0)",
      "grad_w = (grad_y @ cols.transpose(1, 2)).mean(0)",
      "weight gradient averaged over the batch"),
    M("cnn", 'fill=float("-inf")).amax(dim=2)', "fill=0.0).amax(dim=2)",
      "max pool pads with zeros (which beat negative inputs)"),
    M("cnn", "top, left = max(-dy, 0), max(-dx, 0)", "top, left = max(-dx, 0), max(-dy, 0)",
      "shift_images: dy and dx swapped"),
    # ----- rnn: the cells -----
    M("rnn", "return torch.tanh(x @ self.W_xh + h @ self.W_hh + self.b_h)",
      "return torch.tanh(x @ self.W_xh + h @ self.W_hh)", "RNN cell drops its bias"),
    M("rnn", "c = f * c + i * g", "c = i * c + f * g", "LSTM: input and forget gates swapped"),
    M("rnn", "h = o * torch.tanh(c)", "h = o * c", "LSTM: h = o * c without tanh"),
    M("rnn", "torch.tanh(z_g), torch.sigmoid(z_o)", "torch.sigmoid(z_g), torch.sigmoid(z_o)",
      "LSTM candidate through a sigmoid"),
    M("rnn", "return (1 - z) * n + z * h", "return z * n + (1 - z) * h",
      "GRU: z and 1 - z swapped"),
    M("rnn", "n = torch.tanh(x_n + r * h_n)", "n = torch.tanh(x_n + h_n)",
      "GRU: reset gate ignored"),
    M("rnn", "r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)",
      "z, r = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)",
      "GRU: reset and update gates swapped"),
    M("rnn", "self.b[hidden_size:2 * hidden_size] += forget_bias",
      "self.b[:hidden_size] += forget_bias", "forget bias added to the input gate"),
    # ----- attention -----
    M("attention", "/ math.sqrt(q.shape[-1])", "/ q.shape[-1]",
      "scores scaled by 1/d instead of 1/sqrt(d)"),
    M("attention", "weights = torch.softmax(scores, dim=-1)",
      "weights = torch.softmax(scores, dim=-2)", "softmax over queries instead of keys"),
    M("attention", 'scores.masked_fill(~mask, float("-inf"))',
      'scores.masked_fill(mask, float("-inf"))', "mask inverted"),
    M("attention", "torch.arange(t_k - t_q, t_k, device=device)[:, None]",
      "torch.arange(t_q, device=device)[:, None]", "causal mask ignores the cache offset"),
    M("attention", "[None, :] < lengths[:, None]", "[None, :] <= lengths[:, None]",
      "padding mask lets one pad token through"),
    M("attention", "return x.view(B, T, self.n_heads, -1).transpose(1, 2)",
      "return x.view(B, self.n_heads, T, -1)", "heads split by a reshape without transpose"),
    M("attention", "freq = 10000.0 **", "freq = 1000.0 **",
      "sinusoidal positions with base 1000"),
    M("attention", "pos = torch.arange(start, start + x.shape[1], device=x.device)",
      "pos = torch.arange(x.shape[1], device=x.device)", "learned positions ignore start"),
    # ----- diffusion: forward process and samplers -----
    M("diffusion", "return ab.sqrt() * x0 + (1 - ab).sqrt() * noise",
      "return ab.sqrt() * x0 + (1 - ab) * noise", "q_sample: noise times variance, not std"),
    M("diffusion", "return (1 - beta).sqrt() * x_prev + beta.sqrt() * noise",
      "return (1 - beta) * x_prev + beta.sqrt() * noise", "q_step: signal times 1 - beta"),
    M("diffusion", "* math.pi / 2) ** 2", "* math.pi / 2)",
      "cosine schedule: cos instead of cos^2"),
    M("diffusion", "x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()",
      "x0 = (x - (1 - ab) * eps) / ab.sqrt()", "x0 estimate: variance instead of std"),
    M("diffusion", "eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()",
      "eps = (x - x0) / (1 - ab).sqrt()", "clip: eps recomputed without sqrt(alpha_bar)"),
    M("diffusion", "ab_prev = s.alpha_bar[i - 1] if i > 0",
      "ab_prev = s.alpha_bar[i] if i > 0", "DDPM: alpha_bar_{t-1} off by one"),
    M("diffusion", "(ab_prev.sqrt() * beta * x0", "(ab.sqrt() * beta * x0",
      "posterior mean: sqrt(alpha_bar_t) for sqrt(alpha_bar_{t-1})"),
    M("diffusion", "s.alphas[i].sqrt() * (1 - ab_prev) * x", "s.alphas[i] * (1 - ab_prev) * x",
      "posterior mean: alpha_t instead of sqrt(alpha_t)"),
    M("diffusion", "x = x + ((1 - ab_prev) / (1 - ab) * beta).sqrt() * _randn(",
      "x = x + beta.sqrt() * _randn(", "DDPM: variance beta_t instead of beta_tilde_t"),
    M("diffusion", "(1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps",
      "(1 - ab_prev).clamp(min=0).sqrt() * eps", "DDIM: direction ignores sigma"),
    M("diffusion", "sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)).sqrt()",
      "sigma = eta * ((1 - ab_prev) / (1 - ab)).sqrt()", "DDIM: sigma lacks 1 - ab/ab_prev"),
    M("diffusion", "return eps_uncond + guidance * (eps_cond - eps_uncond)",
      "return eps_cond + guidance * (eps_cond - eps_uncond)", "guidance from eps_cond"),
    M("diffusion", "device=t.device) / (dim // 2))", "device=t.device) / dim)",
      "timestep embedding frequencies halved"),
    M("diffusion", "t, y), noise)", "t, y), x0)", "loss regresses x0 instead of the noise"),
    M("diffusion", "return ((qa - qb) ** 2).mean().sqrt().item()",
      "return ((qa - qb) ** 2).mean().item()", "sliced Wasserstein without the square root"),
    # ----- sampling -----
    M("sampling", "z = logits / temperature", "z = logits * temperature",
      "temperature multiplies the logits"),
    M("sampling", 'z.masked_fill(z < kth_largest, float("-inf"))',
      'z.masked_fill(z <= kth_largest, float("-inf"))', "top-k keeps k - 1 tokens"),
    M("sampling", "torch.topk(z, top_k, dim=-1).values[:, -1:]",
      "torch.topk(z, top_k, dim=-1).values[:, :1]", "top-k threshold is the largest logit"),
    M("sampling", "mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p",
      "mass_before = torch.cumsum(sorted_p, dim=-1)",
      "top-p drops the token that reaches p"),
    M("sampling", "mass_before >= top_p", "mass_before > top_p",
      "top-p keeps a token when the mass above it is exactly p"),
    M("sampling", "z = torch.empty_like(z).scatter_(-1, order, sorted_z)", "z = sorted_z",
      "top-p forgets to unsort"),
    M("sampling", "sorted_p = torch.softmax(sorted_z, dim=-1)",
      "sorted_p = torch.softmax(sorted_z / temperature, dim=-1)",
      "top-p mass computed at temperature applied twice"),
    M("sampling", "next_token_probs(logits.float(), temperature, top_k, top_p)",
      "next_token_probs(logits.float(), temperature, top_k, None)",
      "sample_next ignores top_p"),
    # ----- optim -----
    M("optim", "g = g + self.momentum * v if self.nesterov else v",
      "g = g + v if self.nesterov else v", "Nesterov without the momentum factor"),
    M("optim", "v.mul_(self.momentum).add_(g)",
      "v.mul_(self.momentum).add_(g, alpha=1 - self.momentum)", "momentum with dampening"),
    M("optim", "self.m[i].mul_(beta1).add_((1 - beta1) * g)",
      "self.m[i].mul_(beta1).add_(beta1 * g)", "Adam: 1 - beta1 replaced by beta1"),
    M("optim", "add_((1 - beta2) * g * g)", "add_((1 - beta2) * g.abs())",
      "Adam: second moment of |g| instead of g^2"),
    M("optim", "m_hat = self.m[i] / (1 - beta1**self.t)", "m_hat = self.m[i]",
      "Adam: no bias correction of m"),
    M("optim", "v_hat = self.v[i] / (1 - beta2**self.t)", "v_hat = self.v[i] / (1 - beta2)",
      "Adam: v bias correction without the power t"),
    M("optim", "(v_hat.sqrt() + self.eps)", "(v_hat + self.eps)", "Adam: sqrt dropped"),
    M("optim", "(v_hat.sqrt() + self.eps)", "(v_hat + self.eps).sqrt()",
      "Adam: eps inside the square root"),
    M("optim", "p.mul_(1 - self.lr * self.weight_decay)", "p.mul_(1 - self.weight_decay)",
      "AdamW: decay not scaled by the learning rate"),
    # ----- scale -----
    M("scale", "return 6.0 * float(n_params)", "return 2.0 * float(n_params)",
      "training FLOPs 2ND instead of 6ND"),
    M("scale", 'parts["master weights"] = 4', 'parts["master weights"] = 2',
      "master weights in 16 bits"),
    M("scale", "return base_lr * batch_size / base_batch_size",
      "return base_lr * base_batch_size / batch_size", "linear scaling rule inverted"),
    # chapter 9's accumulation step and schedule live in dlbook.train; scale re-exports them
    M("scale", "loss = loss_fn(model, batch) / len(batches)", "loss = loss_fn(model, batch)",
      "accumulation sums the micro-batch losses instead of averaging", "dlbook/train.py"),
    M("scale", "return torch.stack(losses).sum()", "return torch.stack(losses).mean()",
      "accumulation reports the loss divided by k twice", "dlbook/train.py"),
    M("scale", "nn.utils.clip_grad_norm_(model.parameters(), grad_clip)",
      "nn.utils.clip_grad_norm_(model.parameters(), 2 * grad_clip)",
      "accumulation clips at twice the norm", "dlbook/train.py"),
    M("scale", "return (step + 1) / warmup_steps", "return step / warmup_steps",
      "warm-up starts at 0 instead of 1/warmup_steps", "dlbook/train.py"),
    M("scale", "0.5 * (1.0 + math.cos(math.pi * progress))",
      "0.5 * (1.0 - math.cos(math.pi * progress))", "cosine decay runs upwards",
      "dlbook/train.py"),
]

# An import that raises: if this mutant does not fail its tests, they are not importing the
# copy, and every other result would be meaningless.
CANARY = Mutation("sampling", "dlbook/sampling.py", "from __future__ import annotations",
                  "from __future__ import annotations\nraise RuntimeError('mutate.py canary')",
                  "canary: the module raises on import")


def ids(mutations: list[Mutation]) -> list[str]:
    """Stable names: module-n, counted within each module in list order."""
    counts: dict[str, int] = {}
    names = []
    for m in mutations:
        counts[m.module] = counts.get(m.module, 0) + 1
        names.append(f"{m.module}-{counts[m.module]}")
    return names


def copy_repository(dest: Path) -> None:
    """Copy the files git tracks or would track (untracked, not ignored) into ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, str, float]:
    """Run pytest on ``tests`` inside ``copy``; return (outcome, detail, seconds)."""
    shutil.rmtree(copy / ".hypothesis", ignore_errors=True)  # no examples carried over
    env = dict(os.environ, PYTHONPATH=str(copy), OMP_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")  # a stale .pyc must never stand in for a mutant
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=copy, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "killed", f"timeout after {timeout:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    text = out.decode(errors="replace")
    if proc.returncode == 0:
        return "survived", "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.M)
    detail = failed[0] if failed else f"pytest exit status {proc.returncode}"
    if proc.returncode == 5:
        return "error", "no tests collected", seconds
    return "killed", detail, seconds


def existing_tests(copy: Path, module: str) -> list[str]:
    return [t for t in TESTS[module] if (copy / t).is_file()]


def occurrences(root: Path, m: Mutation) -> int:
    """How often the mutation's original text occurs in its file under ``root``."""
    path = root / m.path
    return path.read_text(encoding="utf8").count(m.original) if path.is_file() else 0


def apply(copy: Path, m: Mutation) -> str | None:
    """Write the mutant into the copy; return the original text, or None when stale."""
    if occurrences(copy, m) != 1:
        return None
    path = copy / m.path
    text = path.read_text(encoding="utf8")
    path.write_text(text.replace(m.original, m.replacement), encoding="utf8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated modules, e.g. attention,sampling")
    parser.add_argument("--ids", nargs="*", help="mutant ids, e.g. sampling-5")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--min-score", type=float, default=0.95)
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)

    chosen = list(zip(ids(MUTATIONS), MUTATIONS))
    if args.only:
        modules = set(args.only.split(","))
        unknown = modules - set(TESTS)
        if unknown:
            parser.error(f"unknown modules {sorted(unknown)}; choose from {sorted(TESTS)}")
        chosen = [(i, m) for i, m in chosen if m.module in modules]
    if args.ids:
        chosen = [(i, m) for i, m in chosen if i in set(args.ids)]
    if args.list:
        for i, m in chosen:  # read-only: is each original still there exactly once?
            found = occurrences(ROOT, m)
            state = "ok" if found == 1 else f"STALE ({found} matches)"
            print(f"{i:<13} {m.path:<22} {state:<18} {m.description}")
        return 0

    copy = Path(tempfile.mkdtemp(prefix="dlbook-mutants-"))
    started = time.perf_counter()
    try:
        copy_repository(copy)
        print(f"copied the repository to {copy}")
        # The canary proves that the tests import the copy; the baseline that they pass on it.
        original = apply(copy, CANARY)
        if original is None:
            print("canary is stale: update CANARY", file=sys.stderr)
            return 2
        outcome, detail, _ = run_tests(copy, existing_tests(copy, "sampling"), args.timeout)
        (copy / CANARY.path).write_text(original, encoding="utf8")
        if outcome != "killed":
            print("the canary mutant survived: the tests do not import the copied dlbook",
                  file=sys.stderr)
            return 2
        print(f"canary killed ({detail}): the tests import the copy")
        # Each test file is run once unmutated; a file that fails then (e.g. mid-edit by
        # someone else) is left out, since it would "kill" every mutant.
        tests: dict[str, list[str]] = {}
        for module in sorted({m.module for _, m in chosen}):
            tests[module] = []
            for test in existing_tests(copy, module):
                outcome, detail, seconds = run_tests(copy, [test], args.timeout)
                ok = outcome == "survived"
                print(f"baseline {test:<32} {'passes' if ok else 'FAILS, left out':<16} "
                      f"{seconds:5.1f} s {detail}")
                if ok:
                    tests[module].append(test)
        broken = {module for module, files in tests.items() if not files}

        results = []
        for n, (i, m) in enumerate(chosen, 1):
            if m.module in broken:
                row = (i, m, "skipped", "no test file of its module passes unmutated", 0.0)
            elif (original := apply(copy, m)) is None:
                row = (i, m, "stale", f"original text occurs {occurrences(copy, m)} times "
                       f"in {m.path}, not once", 0.0)
            else:
                try:
                    row = (i, m, *run_tests(copy, tests[m.module], args.timeout))
                finally:
                    (copy / m.path).write_text(original, encoding="utf8")
            results.append(row)
            print(f"[{n}/{len(chosen)}] {i:<13} {row[2]:<8} {row[4]:5.1f} s  {m.description}"
                  f"{'  <- ' + row[3] if row[3] else ''}", flush=True)
    finally:
        if args.keep:
            print(f"kept {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)

    total = time.perf_counter() - started
    counts = {s: sum(r[2] == s for r in results) for s in
              ("killed", "survived", "stale", "skipped", "error")}
    scored = counts["killed"] + counts["survived"]
    score = counts["killed"] / scored if scored else float("nan")
    print("\n| id | module | status | mutation | killed by |\n|---|---|---|---|---|")
    for i, m, status, detail, _ in results:
        print(f"| {i} | {m.module} | {status} | {m.description} | {detail} |")
    print(f"\n{counts['killed']} killed, {counts['survived']} survived, {counts['stale']} stale, "
          f"{counts['skipped']} skipped, {counts['error']} errors; "
          f"score {counts['killed']}/{scored} = {score:.1%}; {total:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "score": score, "counts": counts, "seconds": total,
            "results": [{"id": i, "module": m.module, "path": m.path, "status": s,
                         "description": m.description, "detail": d, "seconds": round(t, 2)}
                        for i, m, s, d, t in results]}, indent=1))
    return 0 if scored and score >= args.min_score else 1


if __name__ == "__main__":
    sys.exit(main())
