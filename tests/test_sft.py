"""dlbook.sft: the masked loss against F.cross_entropy over the response positions only,
zero gradient on the prompt and padding, agreement with dpo.sft_loss, the pairs found in
a small documentation-like text, greedy replies against GPT.generate, a tiny run, and
the shared Adam loop."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlbook.dpo import sft_loss
from dlbook.gpt import GPT, GPTConfig
from dlbook.sft import (
    InstructionPair,
    SFTConfig,
    adam_steps,
    encode_pairs,
    first_sentence,
    follows_format,
    greedy_reply,
    instruction_pairs,
    masked_lm_loss,
    supervised_finetune,
)
from dlbook.text import CharVocab
from dlbook.utils import make_generator

DOC = """Dictionaries
************

A dictionary maps keys to values. It is mutable.

   clear()

      Remove all items from the
      dictionary.

   copy()

      New in version 3.2.

Views
=====

Views are dynamic. They change.
"""


class FixedLogits(nn.Module):
    """A 'model' whose logits are a parameter, so their gradient can be read."""

    def __init__(self, B: int, T: int, V: int):
        super().__init__()
        self.logits = nn.Parameter(torch.randn(B, T, V, generator=torch.Generator().manual_seed(0)))

    def forward(self, idx):
        return self.logits[:, : idx.shape[1]]


def _vocab():
    return CharVocab.from_text(DOC + "QAWhtdos?:")


def test_first_sentence_joins_lines_and_skips_version_notes():
    assert first_sentence("Remove all items\n   from it. More.") == "Remove all items from it."
    assert first_sentence("New in version 3.2.") is None
    assert first_sentence("lowercase start.") is None
    assert first_sentence("No period") is None


def test_instruction_pairs_from_signatures_and_headings():
    pairs = instruction_pairs(DOC)
    assert [p.text for p in pairs] == [
        "Q: What is Dictionaries?\nA: A dictionary maps keys to values.\n",
        "Q: What does clear() do?\nA: Remove all items from the dictionary.\n",
        "Q: What is Views?\nA: Views are dynamic.\n",
    ]  # copy() is left out: its paragraph is a version note
    assert all(len(p.text) <= 40 for p in instruction_pairs(DOC, max_chars=40))
    assert len(instruction_pairs(DOC, max_chars=40)) == 1


def test_encode_pairs_masks_exactly_the_response():
    vocab = _vocab()
    pairs = [InstructionPair("Q: a?\n", "A: Views.\n"), InstructionPair("Q: What?\n", "A: It.\n")]
    ids, mask = encode_pairs(pairs, vocab)
    assert ids.shape == (2, 16) and mask.shape == (2, 15)
    for i, pair in enumerate(pairs):
        assert vocab.decode(ids[i, 1:][mask[i]]) == pair.response
        assert vocab.decode(ids[i, : len(pair.text)]) == pair.text


def test_masked_loss_is_cross_entropy_over_response_positions_only():
    B, T, V = 3, 9, 7
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.rand(B, T - 1, generator=gen) < 0.5
    mask[0, 0] = True
    model = FixedLogits(B, T - 1, V)
    loss = masked_lm_loss(model, ids, mask)
    # reference: one cross_entropy term per selected position, averaged
    terms = [
        F.cross_entropy(model.logits[b, t][None], ids[b, t + 1][None])
        for b in range(B)
        for t in range(T - 1)
        if mask[b, t]
    ]
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    loss.backward()
    grad = model.logits.grad.abs().sum(dim=-1)  # (B, T - 1)
    assert (grad[~mask] == 0).all() and (grad[mask] > 0).all()


def test_masked_loss_equals_dpo_sft_loss_for_a_common_prompt_length():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layers=1, n_heads=2, d_model=8)).eval()
    ids = torch.randint(0, 11, (4, 12))
    prompt_len = 5
    mask = torch.zeros(4, 11, dtype=torch.bool)
    mask[:, prompt_len - 1 :] = True
    torch.testing.assert_close(masked_lm_loss(model, ids, mask), sft_loss(model, ids, prompt_len))


def test_masked_loss_checks_its_arguments():
    model = FixedLogits(1, 4, 3)
    with pytest.raises(ValueError, match="mask"):
        masked_lm_loss(
            model, torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 5, dtype=torch.bool)
        )
    with pytest.raises(ValueError, match="no position"):
        masked_lm_loss(
            model, torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool)
        )


def test_greedy_reply_matches_generate_at_temperature_zero():
    vocab = _vocab()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=32, n_layers=2, n_heads=2, d_model=16))
    prompt = "Q: What?\n"
    reply = greedy_reply(model, vocab, prompt, 20, stop="\n")
    full = vocab.decode(model.generate(vocab.encode(prompt)[None], 20, temperature=0.0)[0])
    expected = full[len(prompt) :]
    if "\n" in expected:
        expected = expected[: expected.index("\n") + 1]
    assert reply == expected
    with pytest.raises(ValueError, match="block_size"):
        greedy_reply(model, vocab, prompt, 30)


def test_follows_format():
    assert follows_format("A: Remove all items.\n")
    assert not follows_format("A: Remove all items\n")  # no period
    assert not follows_format("A: Remove all items.")  # no newline: ran out of budget
    assert not follows_format("   Remove all items.\n")  # no "A: "


def test_supervised_finetune_lowers_the_response_loss_and_copies_the_model():
    vocab = _vocab()
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=128, n_layers=1, n_heads=2, d_model=16))
    ids, mask = encode_pairs(instruction_pairs(DOC), vocab)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        start = masked_lm_loss(model.eval(), ids, mask).item()
    tuned, losses = supervised_finetune(
        model, ids, mask, SFTConfig(steps=30, batch_size=3, lr=3e-3)
    )
    with torch.no_grad():
        end = masked_lm_loss(tuned, ids, mask).item()
    assert len(losses) == 30 and end < start - 0.5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="lr"):
        SFTConfig(lr=0.0)


def test_adam_steps_is_the_plain_adam_loop_on_seeded_batches():
    x, target = torch.randn(10, 3), torch.randn(10, 1)

    def batch_loss(model, batch):
        return F.mse_loss(model(x[batch]), target[batch])

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    losses = adam_steps(model, 10, batch_loss, steps=5, batch_size=4, lr=0.1, seed=3)
    torch.manual_seed(0)
    reference = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.1)
    generator, expected = make_generator(3), []
    for _ in range(5):
        batch = torch.randint(0, 10, (4,), generator=generator)
        loss = batch_loss(reference, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert losses == expected
    torch.testing.assert_close(model.weight, reference.weight, rtol=0, atol=0)
