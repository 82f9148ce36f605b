"""PPO for a language model: tune chapter 7's character GPT toward a programmatic
reward.

A language model is a policy: the state is the text so far, the action the next token. A
sampled continuation y of a prompt x earns a score r(x, y) at its end, and, as in
InstructGPT (Ouyang et al., 2022) and its precursors (Ziegler et al., 2019), each token
pays a penalty beta * (log pi(y_t | ...) - log pi_ref(y_t | ...)), whose sum over the
tokens estimates the KL divergence from the frozen reference model pi_ref. The update is
PPO's clipped objective (``dlbook.ppo.clipped_surrogate``). Two simplifications, stated
where they are used: the advantage of every token is the sequence's penalized reward
minus the batch mean (REINFORCE's baseline, no value network), and dropout is off while
sampling and training, so that the probability ratio compares the same function twice.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.ppo import clipped_surrogate
from dlbook.utils import (
    check_int,
    check_positive_int,
    check_real,
    model_device,
    seed_offset,
)


def count_reward(texts: list[str], pattern: str = "()") -> torch.Tensor:
    """The proxy reward: how many times ``pattern`` occurs in each text
    (non-overlapping).

    It stands for "write text that shows function calls such as ``len()``"; it counts
    the pattern, which is not the same thing, and that gap is what the policy will find.
    """
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty str, got {pattern!r}")
    return torch.tensor([float(t.count(pattern)) for t in texts])


def token_log_probs(
    model: nn.Module, ids: torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """log pi(y_t | x, y_<t) of every generated token: (B, T) ids -> (B, T -
    prompt_len)."""
    logits = model(ids[:, :-1])  # (B, T - 1, V): position t predicts token t + 1
    log_p = torch.log_softmax(logits, -1)
    taken = log_p.gather(2, ids[:, 1:, None]).squeeze(2)  # (B, T - 1)
    return taken[:, prompt_len - 1 :]  # only the continuation's tokens


@dataclass(frozen=True)
class RLHFConfig:
    """PPO with a KL penalty on a character LM; sizes chosen to run in seconds on a
    CPU."""

    steps: int = 12  # PPO iterations: sample a batch, then update on it
    batch_size: int = 32  # continuations sampled per iteration
    new_tokens: int = 24  # length of each continuation
    epochs: int = 2  # passes over each batch
    lr: float = 3e-4  # Adam's learning rate (all weights are tuned)
    beta: float = 0.05  # weight of the per-token KL penalty
    clip: float = 0.2  # PPO's epsilon
    seed: int = 0  # sampling

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "new_tokens", "epochs"):
            check_positive_int(getattr(self, name), name)
        check_real(self.lr, "lr", 0.0, low_open=True)
        check_real(self.beta, "beta", 0.0)
        check_real(self.clip, "clip", 0.0, 1.0, low_open=True)
        check_int(self.seed, "seed", minimum=0)


@dataclass(frozen=True)
class Samples:
    """A batch of continuations scored against the reference model."""

    texts: list[str]  # the continuations, without the prompt
    reward: torch.Tensor  # (B,) the programmatic reward
    kl: torch.Tensor  # (B,) sum over tokens of log pi - log pi_ref (a KL estimate)
    ref_nll: torch.Tensor  # (B,) mean over tokens of -log pi_ref: how odd the text is


@torch.no_grad()
def sample_and_score(
    policy: nn.Module,
    reference: nn.Module,
    vocab,
    prompt: str,
    n: int,
    new_tokens: int,
    reward_fn: Callable[[list[str]], torch.Tensor],
    generator: torch.Generator,
) -> tuple[torch.Tensor, Samples]:
    """Sample n continuations of ``prompt`` from ``policy`` and score them; returns the
    ids (n, len(prompt) + new_tokens) and the scores."""
    check_positive_int(n, "n")
    start = vocab.encode(prompt)[None].repeat(n, 1).to(model_device(policy))  # (n, P)
    ids = policy.generate(start, new_tokens, generator=generator)
    P = start.shape[1]
    texts = [vocab.decode(row[P:].tolist()) for row in ids]
    log_p = token_log_probs(policy, ids, P)
    log_ref = token_log_probs(reference, ids, P)
    kl = (log_p - log_ref).sum(1).cpu()  # (n,)
    return ids, Samples(texts, reward_fn(texts), kl, -log_ref.mean(1).cpu())


def rlhf_step(
    policy: nn.Module,
    reference: nn.Module,
    optimizer: torch.optim.Optimizer,
    ids: torch.Tensor,
    prompt_len: int,
    samples: Samples,
    config: RLHFConfig,
) -> None:
    """PPO epochs on one batch; the advantage of every token is its sequence's
    r - beta * KL minus the batch mean."""
    with torch.no_grad():
        old_log_p = token_log_probs(policy, ids, prompt_len)  # (B, N)
    score = samples.reward - config.beta * samples.kl  # (B,) the penalized reward
    score = score.to(old_log_p.device)
    advantage = (score - score.mean())[:, None].expand_as(old_log_p)  # (B, N)
    for _ in range(config.epochs):
        log_p = token_log_probs(policy, ids, prompt_len)
        loss = clipped_surrogate(
            log_p.flatten(), old_log_p.flatten(), advantage.flatten(), config.clip
        )
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()


def rlhf(
    reference: nn.Module,
    vocab,
    prompt: str,
    config: RLHFConfig,
    reward_fn: Callable[[list[str]], torch.Tensor] = count_reward,
) -> tuple[nn.Module, list[Samples]]:
    """Tune a copy of ``reference`` with PPO and a KL penalty; return it and the scored
    batch of every iteration (sampled before that iteration's update)."""
    if not isinstance(config, RLHFConfig):
        raise TypeError(f"config must be an RLHFConfig, got {type(config).__name__}")
    reference = reference.eval().requires_grad_(False)
    policy = copy.deepcopy(reference).requires_grad_(True).eval()  # eval: no dropout
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    device = model_device(policy)  # sampling draws on the model's device
    generator = torch.Generator(device=device).manual_seed(config.seed + seed_offset())
    history = []
    for _ in range(config.steps):
        ids, samples = sample_and_score(
            policy,
            reference,
            vocab,
            prompt,
            config.batch_size,
            config.new_tokens,
            reward_fn,
            generator,
        )
        history.append(samples)
        rlhf_step(policy, reference, optimizer, ids, len(prompt), samples, config)
    return policy, history
