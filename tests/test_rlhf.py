"""Tests of dlbook.rlhf: the reward, per-token log-probabilities, and one PPO iteration on a
tiny GPT with random weights."""

import pytest
import torch

from dlbook.gpt import GPT, GPTConfig
from dlbook.rlhf import RLHFConfig, count_reward, rlhf, sample_and_score, token_log_probs
from dlbook.text import CharVocab

VOCAB = CharVocab(tuple(" ()abc"))


def _tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(VOCAB), block_size=32, n_layers=1, n_heads=2,
                         d_model=16, dropout=0.0)).eval()


def test_count_reward_counts_non_overlapping_patterns():
    reward = count_reward(["()()", "(()", "abc", "(())()"])
    torch.testing.assert_close(reward, torch.tensor([2.0, 1.0, 0.0, 2.0]))


def test_token_log_probs_equal_a_loop_over_prefixes():
    model = _tiny_gpt()
    ids = torch.randint(len(VOCAB), (3, 9), generator=torch.Generator().manual_seed(1))
    ours = token_log_probs(model, ids, prompt_len=4)
    assert ours.shape == (3, 5)
    with torch.no_grad():
        for t in range(4, 9):  # the token at position t given the t tokens before it
            log_p = torch.log_softmax(model(ids[:, :t])[:, -1], -1)
            expected = log_p.gather(1, ids[:, t:t + 1]).squeeze(1)
            torch.testing.assert_close(ours[:, t - 4], expected, atol=1e-5, rtol=1e-5)


def test_the_kl_estimate_is_zero_before_any_update_and_the_policy_moves_after():
    reference = _tiny_gpt()
    config = RLHFConfig(steps=2, batch_size=8, new_tokens=6, epochs=1, lr=1e-2)
    policy, history = rlhf(reference, VOCAB, "a", config)
    assert len(history) == 2
    torch.testing.assert_close(history[0].kl, torch.zeros(8))  # the policy is the reference
    assert history[0].ref_nll.min() > 0 and len(history[0].texts[0]) == 6
    moved = any(not torch.equal(p, q) for p, q in zip(policy.parameters(),
                                                      reference.parameters()))
    assert moved and not any(p.requires_grad for p in reference.parameters())
    _, samples = sample_and_score(policy, reference, VOCAB, "a", 4, 6, count_reward,
                                  torch.Generator().manual_seed(0))
    assert samples.reward.shape == samples.kl.shape == (4,)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="pattern must be a non-empty str"):
        count_reward(["a"], "")
    with pytest.raises(TypeError, match="texts must be a list of str"):
        count_reward("()")
    with pytest.raises(ValueError, match="beta must be >= 0"):
        RLHFConfig(beta=-1.0)
    with pytest.raises(ValueError, match="new_tokens must be a positive int"):
        RLHFConfig(new_tokens=0)
    with pytest.raises(TypeError, match="config must be an RLHFConfig"):
        rlhf(_tiny_gpt(), VOCAB, "a", {"steps": 1})
