"""dlbook.dpo: the DPO loss against the formula of Rafailov et al. (2023) computed
independently (float64, with math), its gradient against the one the paper derives in
section 4, sequence log-probabilities against cross_entropy, and a tiny run in which DPO
raises the margin."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlbook.dpo import (
    PreferenceConfig,
    dpo_loss,
    preference_gap,
    response_log_probs,
    sft_loss,
    swap_pairs,
    tune_on_preferences,
)
from dlbook.gpt import GPT, GPTConfig
from dlbook.text import CharVocab


def _formula(pc, pr, rc, rr, beta):
    # -log sigma(beta * ((pc - rc) - (pr - rr))), one pair at a time
    out = []
    for a, b, c, d in zip(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist()):
        z = beta * ((a - c) - (b - d))
        out.append(-math.log(1.0 / (1.0 + math.exp(-z))))
    return sum(out) / len(out)


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_loss_is_the_papers_formula(beta):
    gen = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(16, dtype=torch.float64, generator=gen) * 5 for _ in range(4))
    loss, margin = dpo_loss(pc, pr, rc, rr, beta)
    assert abs(loss.item() - _formula(pc, pr, rc, rr, beta)) < 1e-12
    torch.testing.assert_close(margin, beta * (pc - rc - pr + rr), atol=1e-12, rtol=0)


def test_dpo_gradient_is_the_papers_section_4_gradient():
    # d loss / d log pi(y_w) = -beta sigma(-z) / B, and the opposite for y_l
    gen = torch.Generator().manual_seed(1)
    pc, pr = (torch.randn(8, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(2))
    rc, rr = (torch.randn(8, dtype=torch.float64, generator=gen) for _ in range(2))
    beta = 0.3
    loss, margin = dpo_loss(pc, pr, rc, rr, beta)
    loss.backward()
    expected = -beta * torch.sigmoid(-margin) / 8
    torch.testing.assert_close(pc.grad, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(pr.grad, -expected, atol=1e-12, rtol=0)


def test_at_the_reference_the_loss_is_log_2():
    x = torch.randn(5)
    loss, margin = dpo_loss(x, x + 1, x, x + 1)
    assert abs(loss.item() - math.log(2)) < 1e-6 and margin.abs().max() < 1e-6


def _model(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=12, block_size=16, n_layers=1, n_heads=2, d_model=16,
                         dropout=0.0)).eval()


def test_response_log_probs_and_sft_loss_against_cross_entropy():
    model = _model()
    ids = torch.randint(0, 12, (3, 10), generator=torch.Generator().manual_seed(2))
    got = response_log_probs(model, ids, prompt_len=4)
    with torch.no_grad():
        logits = model(ids[:, :-1])
    nll = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")  # (B, T - 1)
    torch.testing.assert_close(got, -nll[:, 3:].sum(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sft_loss(model, ids, 4), nll[:, 3:].mean(), atol=1e-6, rtol=1e-5)


def test_swap_pairs():
    vocab = CharVocab.from_text('ab"\' ')
    text = 'ab "a" b ' * 40
    ids = vocab.encode(text)
    chosen, rejected = swap_pairs(ids, vocab, 10, prompt_len=5, response_len=4)
    assert chosen.shape == rejected.shape == (10, 9)
    assert torch.equal(chosen[:, :5], rejected[:, :5])  # same prompts
    for c, r in zip(chosen.tolist(), rejected.tolist()):
        assert '"' in vocab.decode(r[5:]) and '"' not in vocab.decode(c[5:])
        assert vocab.decode(c[5:]) == vocab.decode(r[5:]).replace('"', "'")
    with pytest.raises(ValueError, match="windows hold"):
        swap_pairs(ids, vocab, 10_000, prompt_len=5, response_len=4)


def test_dpo_raises_the_margin_and_keeps_the_reference():
    model = _model()
    gen = torch.Generator().manual_seed(3)
    rejected = torch.randint(0, 12, (32, 12), generator=gen)
    chosen = rejected.clone()
    chosen[:, 6:] = (chosen[:, 6:] + 1) % 12  # any systematic difference
    before = preference_gap(model, chosen, rejected, 6).mean()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    tuned, losses = tune_on_preferences(model, chosen, rejected, 6,
                                        PreferenceConfig(steps=60, batch_size=8, lr=3e-3))
    after = preference_gap(tuned, chosen, rejected, 6).mean()
    assert abs(losses[0] - math.log(2)) < 1e-5  # the policy starts at the reference
    assert losses[-1] < 0.4 and after > before + 3, (losses[-1], before, after)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_config_errors():
    with pytest.raises(ValueError, match="loss"):
        PreferenceConfig(loss="ppo")
    with pytest.raises(ValueError, match="beta"):
        PreferenceConfig(beta=0.0)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        dpo_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(2))
