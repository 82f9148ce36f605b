"""Train chapter 7's character-level GPT for longer and save the checkpoint the book ships.

Run ``python -m dlbook.train_gpt`` (``--help`` lists the options). It trains on
``CharCorpus.pydoc()``'s training split with AdamW, a linear warm-up and a cosine decay of the
learning rate, stops after ``max_steps`` steps or ``max_minutes`` of CPU time, whichever comes
first, and writes ``dlbook/checkpoints/gpt_char_pydoc.pt``: the weights in float16 (to keep the
file small), the configurations, the vocabulary, and the validation loss measured with exactly
the weights saved. ``load_checkpoint`` reads it back.

``--model lstm`` trains chapter 5's character LSTM with the same data, recipe and CPU-time
budget instead, for chapter 7's comparison at equal training time
(``dlbook/checkpoints/lstm_char_pydoc.pt``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dlbook.gpt import GPT, GPTConfig, count_parameters
from dlbook.rnn import CharLSTM, CharLSTMConfig
from dlbook.text import CharCorpus, CharVocab, evaluate_char_lm, get_batch
from dlbook.utils import set_seed

CHECKPOINT = Path(__file__).parent / "checkpoints" / "gpt_char_pydoc.pt"
LSTM_CHECKPOINT = Path(__file__).parent / "checkpoints" / "lstm_char_pydoc.pt"
MODELS = ("gpt", "lstm")


@dataclass(frozen=True)
class TrainGPTConfig:
    """How the shipped checkpoint is trained."""

    model: str = "gpt"  # "gpt", or "lstm" for chapter 5's CharLSTM (H = 256) as a baseline
    n_layers: int = 4  # Transformer blocks
    n_heads: int = 4  # attention heads per block
    d_model: int = 128  # width of the token vectors
    block_size: int = 128  # context length in characters
    dropout: float = 0.1  # residual and embedding dropout
    batch_size: int = 32  # windows per step
    max_steps: int = 3000  # most optimizer steps
    max_minutes: float = 28.0  # also stop after this much CPU time (all threads together)
    lr: float = 2e-3  # peak AdamW learning rate
    min_lr: float = 1e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 100  # linear warm-up from 0 to lr
    weight_decay: float = 0.1  # AdamW decay, matrices only (p.dim() >= 2)
    grad_clip: float = 1.0  # max gradient norm
    eval_every: int = 200  # steps between validation estimates in the log
    eval_windows: int = 64  # validation windows per estimate (and in the unit test)
    seed: int = 0  # model initialization and training windows
    num_threads: int = 1  # CPU threads; 1 is fastest when other jobs share the cores

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")


def learning_rate(progress: float, step: int, config: TrainGPTConfig) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine from ``lr`` down to ``min_lr``.

    ``progress`` in [0, 1] is the fraction of the budget used: of the steps or of the CPU
    time, whichever is further along, so the decay finishes however fast the machine is.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return config.min_lr + (config.lr - config.min_lr) * cosine


def make_optimizer(model: torch.nn.Module, config: TrainGPTConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; biases, layer norms stay undecayed."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99))


def build_model(config: TrainGPTConfig, vocab_size: int) -> GPT | CharLSTM:
    """The GPT the config describes, or chapter 5's CharLSTM for ``model="lstm"``."""
    if config.model == "lstm":
        return CharLSTM(CharLSTMConfig(vocab_size=vocab_size, embed_dim=32, hidden_size=256))
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=config.block_size,
                         n_layers=config.n_layers, n_heads=config.n_heads,
                         d_model=config.d_model, dropout=config.dropout))


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, grad_clip: float) -> float:
    """One AdamW step on the next-character loss of x, y (B, T); returns the loss."""
    model.train()
    logits = model(x)
    logits = logits[0] if isinstance(logits, tuple) else logits  # the LSTM adds its state
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()


def train(config: TrainGPTConfig, corpus: CharCorpus,
          log=print) -> tuple[GPT | CharLSTM, dict]:
    """Train on ``corpus.train``; return the model and a summary: steps, CPU and wall seconds,
    and the history of validation estimates (every ``eval_every`` steps).

    The budget is CPU time, not wall-clock time: on a machine shared with other jobs the
    process gets a fraction of a core, and the CPU time it used is what a quiet machine
    with one thread would have needed. Evaluation counts towards it.
    """
    set_seed(config.seed)
    model = build_model(config, len(corpus.vocab))
    opt = make_optimizer(model, config)
    gen = torch.Generator().manual_seed(config.seed)
    log(f"{type(model).__name__} with {count_parameters(model):,} parameters; {config}")
    history = {"step": [], "cpu_seconds": [], "val_loss": []}
    start, cpu_start, step, recent = time.perf_counter(), time.process_time(), 0, []
    while step < config.max_steps:
        elapsed = time.process_time() - cpu_start
        if elapsed > 60 * config.max_minutes:
            break
        progress = max(step / config.max_steps, elapsed / (60 * config.max_minutes))
        for group in opt.param_groups:
            group["lr"] = learning_rate(progress, step, config)
        x, y = get_batch(corpus.train, config.block_size, config.batch_size, gen)
        step, recent = step + 1, recent + [train_step(model, opt, x, y, config.grad_clip)]
        if step % config.eval_every == 0:
            val = evaluate_char_lm(model, corpus.val, config.block_size, config.eval_windows)
            for key, value in zip(history, (step, time.process_time() - cpu_start, val)):
                history[key].append(value)
            log(f"step {step:5d}  cpu {history['cpu_seconds'][-1]:7.1f} s  wall "
                f"{time.perf_counter() - start:7.1f} s  lr {opt.param_groups[0]['lr']:.2e}  "
                f"train {sum(recent) / len(recent):.4f}  val {val:.4f}")
            recent = []
    return model, {"steps": step, "cpu_seconds": time.process_time() - cpu_start,
                   "wall_seconds": time.perf_counter() - start, "history": history}


def data_fingerprint(data: torch.Tensor) -> str:
    """A SHA-256 of the ids, to tell whether a validation split is the one measured."""
    return hashlib.sha256(data.numpy().tobytes()).hexdigest()


def _model_from_record(kind: str, model_config: dict) -> GPT | CharLSTM:
    """An untrained model of the kind and sizes a checkpoint records."""
    if kind == "lstm":
        return CharLSTM(CharLSTMConfig(**model_config))
    return GPT(GPTConfig(**model_config))


def save_checkpoint(model: GPT | CharLSTM, corpus: CharCorpus, config: TrainGPTConfig,
                    summary: dict, path: Path) -> dict:
    """Save float16 weights, then reload them and record the validation loss they give."""
    state = {k: v.half() for k, v in model.state_dict().items()}
    ckpt = {"model": config.model, "model_config": dataclasses.asdict(model.config),
            "train_config": dataclasses.asdict(config),
            "chars": "".join(corpus.vocab.chars), "state_dict": state, **summary}
    reloaded = _model_from_record(config.model, ckpt["model_config"])
    reloaded.load_state_dict({k: v.float() for k, v in state.items()})
    ckpt["val_loss"] = evaluate_char_lm(reloaded, corpus.val, config.block_size)  # all of it
    ckpt["val_loss_subset"] = evaluate_char_lm(reloaded, corpus.val, config.block_size,
                                               config.eval_windows)
    ckpt["eval_windows"] = config.eval_windows
    ckpt["val_sha256"] = data_fingerprint(corpus.val)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return ckpt


def load_checkpoint(path: str | Path = CHECKPOINT) -> tuple[GPT | CharLSTM, CharVocab, dict]:
    """Read a checkpoint written by ``save_checkpoint``: the model (float32, eval mode), its
    vocabulary, and the rest of the record (configs, steps, seconds, validation losses)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {str(path)!r}; run python -m dlbook.train_gpt")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = _model_from_record(ckpt["model"], ckpt["model_config"])
    model.load_state_dict({k: v.float() for k, v in ckpt.pop("state_dict").items()})
    return model.eval(), CharVocab(ckpt["chars"]), ckpt


def main(argv: list[str] | None = None) -> None:
    """Parse ``--field value`` overrides of ``TrainGPTConfig``, train, save, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(TrainGPTConfig):
        parser.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    parser.add_argument("--out", type=Path, default=None,
                        help="where to save (default: the package's checkpoint for the model)")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    config = TrainGPTConfig(**args)
    if out is None:
        out = LSTM_CHECKPOINT if config.model == "lstm" else CHECKPOINT
    torch.set_num_threads(config.num_threads)
    corpus = CharCorpus.pydoc()
    model, summary = train(config, corpus, log=lambda s: print(s, flush=True))
    ckpt = save_checkpoint(model, corpus, config, summary, out)
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB) after {summary['steps']} steps, "
          f"{summary['cpu_seconds'] / 60:.1f} CPU min ({summary['wall_seconds'] / 60:.1f} "
          f"wall): val loss {ckpt['val_loss']:.4f} "
          f"(subset {ckpt['val_loss_subset']:.4f})", flush=True)


if __name__ == "__main__":
    main()
