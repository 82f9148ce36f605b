"""Direct preference optimization (Rafailov et al., 2023) and supervised fine-tuning on
preference pairs, for chapter 7's character GPT.

DPO trains a policy pi_theta on pairs (x, y_w, y_l), where the response y_w was
preferred to y_l, with no reward model and no sampling: it minimizes

    -log sigma(beta [(log pi_theta(y_w|x) - log pi_ref(y_w|x))
                     - (log pi_theta(y_l|x) - log pi_ref(y_l|x))])

against a frozen reference pi_ref (the model before tuning). SFT, the first step of
InstructGPT, is the plain next-token loss on the preferred responses alone.
``swap_pairs`` builds a preference from the corpus: the same continuation, written with
one character or the other.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlbook.sft import adam_steps
from dlbook.text import CharVocab
from dlbook.utils import check_positive_int, check_real, make_generator


def response_log_probs(
    model: nn.Module, ids: torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """log pi(y | x): the summed log-probabilities of the response tokens, those after
    the first ``prompt_len`` of each row of ids (B, T). Returns (B,)."""
    check_positive_int(prompt_len, "prompt_len")
    if ids.dim() != 2 or not prompt_len < ids.shape[1]:
        raise ValueError(
            f"ids must be (B, T) with T > prompt_len={prompt_len}, got "
            f"{tuple(ids.shape)}"
        )
    logits = model(ids[:, :-1])  # (B, T - 1, V): position t predicts token t + 1
    log_p = torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None])[..., 0]
    return log_p[:, prompt_len - 1 :].sum(dim=1)  # only the response's tokens


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The DPO loss (Rafailov et al., 2023, eq. 7), averaged over pairs.

    Each argument holds (B,) sequence log-probabilities. The implicit reward of a
    response is ``beta * (log pi_theta(y|x) - log pi_ref(y|x))``; the loss is the
    logistic loss of the chosen response's reward minus the rejected one's. Returns the
    loss and that reward margin (B,), detached.
    """
    check_real(beta, "beta", 0.0, low_open=True)
    shapes = {
        tuple(t.shape)
        for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    }
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"the four log-probabilities must all be (B,), got {shapes}")
    margin = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margin).mean(), margin.detach()


def sft_loss(model: nn.Module, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Supervised fine-tuning's loss: the mean negative log-likelihood per response
    token of the rows of ids (B, T), the prompt's tokens left out."""
    n_tokens = ids.shape[0] * (ids.shape[1] - prompt_len)
    return -response_log_probs(model, ids, prompt_len).sum() / n_tokens


def swap_pairs(
    ids: torch.Tensor,
    vocab: CharVocab,
    n_pairs: int,
    prompt_len: int = 48,
    response_len: int = 32,
    old: str = '"',
    new: str = "'",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Preference pairs from a text: windows whose response part holds ``old``; the
    chosen response writes it as ``new``, the rejected one is the text as it is.

    Returns (chosen, rejected), each (n_pairs, prompt_len + response_len), with the same
    prompts; the windows are drawn at random (``make_generator(seed)``).
    """
    check_positive_int(n_pairs, "n_pairs")
    old_id, new_id = vocab.encode(old)[0], vocab.encode(new)[0]
    T = prompt_len + response_len
    windows = ids.unfold(0, T, 1)  # (N, T): every window, a view
    candidates = torch.nonzero((windows[:, prompt_len:] == old_id).any(dim=1))[:, 0]
    if len(candidates) < n_pairs:
        raise ValueError(
            f"only {len(candidates)} windows hold {old!r}, asked {n_pairs}"
        )
    pick = candidates[
        torch.randperm(len(candidates), generator=make_generator(seed))[:n_pairs]
    ]
    rejected = ids[pick[:, None] + torch.arange(T)]
    chosen = rejected.clone()
    response = chosen[:, prompt_len:]
    response[response == old_id] = new_id
    return chosen, rejected


@dataclass(frozen=True)
class PreferenceConfig:
    """How a model is tuned on preference pairs."""

    loss: str = "dpo"  # "dpo", or "sft": next-token loss on the chosen responses
    steps: int = 40
    batch_size: int = 32  # pairs per step
    lr: float = 1e-4  # Adam's learning rate (Rafailov et al.: 1e-6 for 6B models)
    beta: float = 0.1  # DPO's inverse temperature (the paper's default)
    seed: int = 0  # batch order (plus seed_offset())

    def __post_init__(self) -> None:
        if self.loss not in ("dpo", "sft"):
            raise ValueError(f"loss must be 'dpo' or 'sft', got {self.loss!r}")
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")
        check_real(self.lr, "lr", 0.0, low_open=True)
        check_real(self.beta, "beta", 0.0, low_open=True)


def tune_on_preferences(
    model: nn.Module,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    prompt_len: int,
    config: PreferenceConfig = PreferenceConfig(),
) -> tuple[nn.Module, list[float]]:
    """A tuned copy of ``model`` (its dropout off, as in the reference), and the loss
    of each step. The model itself is the frozen reference; its log-probabilities are
    computed once."""
    reference = model.eval()
    policy = copy.deepcopy(model).eval()
    with torch.no_grad():
        ref_chosen = response_log_probs(reference, chosen, prompt_len)
        ref_rejected = response_log_probs(reference, rejected, prompt_len)

    def batch_loss(m: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        if config.loss == "sft":
            return sft_loss(m, chosen[batch], prompt_len)
        loss, _ = dpo_loss(
            response_log_probs(m, chosen[batch], prompt_len),
            response_log_probs(m, rejected[batch], prompt_len),
            ref_chosen[batch],
            ref_rejected[batch],
            config.beta,
        )
        return loss

    losses = adam_steps(
        policy,
        len(chosen),
        batch_loss,
        steps=config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=config.seed,
    )
    return policy, losses


@torch.no_grad()
def preference_gap(
    model: nn.Module, chosen: torch.Tensor, rejected: torch.Tensor, prompt_len: int
) -> torch.Tensor:
    """log pi(y_w | x) - log pi(y_l | x) of every pair (B,): positive where the model
    prefers the chosen response."""
    model.eval()
    return response_log_probs(model, chosen, prompt_len) - response_log_probs(
        model, rejected, prompt_len
    )
