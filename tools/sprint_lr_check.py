"""Chapter 7's sprint GPT at learning rates 0.003 and 0.01 (with and without a 20-step warm-up),
on three seeds: the measurement behind the chapter's choice of 0.003 for the GPT.

    OMP_NUM_THREADS=1 python tools/sprint_lr_check.py

Measured (torch 2.13, CPU): validation loss after 130 steps, seeds 0/1/2:
0.003: 2.290 2.275 2.258; 0.01: 2.703 2.726 2.545; 0.01 with warm-up: 2.424 2.498 2.486.
"""

from dlbook import set_seed
from dlbook.gpt import GPT, GPTConfig
from dlbook.text import CharCorpus, LMTrainConfig, train_char_lm
from dlbook.train import Schedule, TrainConfig


def sprint_val_loss(seed: int, lr: float, warmup: int) -> float:
    """Validation loss of the sprint GPT after 130 steps at peak rate ``lr`` with
    ``warmup`` warm-up steps, initialization and batches from ``seed``."""
    corpus = CharCorpus.pydoc()
    config = GPTConfig(vocab_size=len(corpus.vocab), block_size=64, n_layers=2, n_heads=4,
                       d_model=64, dropout=0.0)
    set_seed(seed)
    gpt = GPT(config)
    training = TrainConfig(steps=130, batch_size=32, lr=lr, grad_clip=1.0,
                           eval_every=130, seed=seed, progress=False,
                           schedule=Schedule(warmup_steps=warmup))
    history = train_char_lm(gpt, corpus, LMTrainConfig(training=training, block_size=64,
                                                       eval_windows=128))
    return history.val_loss[-1]


def main() -> None:
    for seed in (0, 1, 2):
        for lr, warmup in ((3e-3, 0), (1e-2, 0), (1e-2, 20)):
            loss = sprint_val_loss(seed, lr, warmup)
            print(f"seed {seed} lr {lr} warm-up {warmup}: {loss:.3f}", flush=True)


if __name__ == "__main__":
    main()
