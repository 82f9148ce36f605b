"""Tests of dlbook.gpt (causality, key-value cache, parameter counts, checkpoints). The
training script, scripts/train_gpt.py, is tested in test_scripts.py."""

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.attention import KVCache
from dlbook.checkpoint import shipped_checkpoint
from dlbook.gpt import (
    GPT,
    GPT2_SIZES,
    GPT_CHECKPOINT,
    LSTM_CHECKPOINT,
    GPTConfig,
    count_parameters,
    data_fingerprint,
    gpt2_config,
    gpt_parameter_formula,
    load_char_lm,
    meta_gpt,
    training_from_record,
)
from dlbook.text import CharCorpus, evaluate_char_lm

SMALL = GPTConfig(vocab_size=11, block_size=16, n_layers=2, n_heads=2, d_model=8, dropout=0.0)


def small_gpt(seed: int = 0, **changes) -> GPT:
    torch.manual_seed(seed)
    return GPT(dataclasses.replace(SMALL, **changes)).double().eval()


def test_logits_shape_and_errors():
    model = small_gpt()
    assert model(torch.randint(0, 11, (3, 5))).shape == (3, 5, 11)
    with pytest.raises(ValueError, match="exceeds block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r"idx must be \(B, T\) int64"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=5, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="dropout must be in"):
        GPTConfig(vocab_size=5, dropout=1.5)
    with pytest.raises(ValueError, match="one of"):
        gpt2_config("124M")


@settings(max_examples=25, deadline=None)
@given(T=st.integers(2, 16), data=st.data())
def test_causal_mask_hides_the_future(T, data):
    model = small_gpt()
    t = data.draw(st.integers(1, T - 1))  # change the token at position t and everything after
    gen = torch.Generator().manual_seed(T)
    idx = torch.randint(0, 11, (2, T), generator=gen)
    changed = idx.clone()
    changed[:, t:] = (idx[:, t:] + 1) % 11
    before, after = model(idx), model(changed)
    torch.testing.assert_close(after[:, :t], before[:, :t], rtol=0, atol=1e-12)
    assert (after[:, t] - before[:, t]).abs().max() > 1e-6  # the changed position does react


def test_kv_cache_gives_the_same_logits():
    model = small_gpt()
    idx = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(1))
    full = model(idx)
    caches = [KVCache() for _ in model.blocks]
    pieces = [model(idx[:, :5], caches)] + [model(idx[:, t:t + 1], caches) for t in range(5, 12)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="exceeds block_size"):
        model(torch.zeros(3, 5, dtype=torch.long), caches)


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.0, None, None), (1.0, None, None),
                                                       (0.8, 4, None), (1.2, None, 0.9)])
def test_generate_with_cache_equals_without(temperature, top_k, top_p):
    model = small_gpt(seed=3)
    prompt = torch.randint(0, 11, (2, 3), generator=torch.Generator().manual_seed(0))
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        # 30 new tokens run past block_size = 16, so the sliding window is tested too
        outs.append(model.generate(prompt, 30, temperature, top_k, top_p, gen, use_cache))
    assert outs[0].shape == (2, 33)
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0][:, :3], prompt)


def test_generate_is_seeded_and_restores_training_mode():
    model = small_gpt().train()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    a = model.generate(prompt, 10, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and model.training
    with pytest.raises(ValueError, match="T0 >= 1"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 3)


@settings(max_examples=25, deadline=None)
@given(vocab=st.integers(2, 50), block=st.integers(1, 40), layers=st.integers(1, 3),
       heads=st.sampled_from([1, 2, 4]), head_size=st.integers(1, 8), tie=st.booleans())
def test_parameter_formula_matches_the_model(vocab, block, layers, heads, head_size, tie):
    config = GPTConfig(vocab_size=vocab, block_size=block, n_layers=layers, n_heads=heads,
                       d_model=heads * head_size, tie_weights=tie)
    assert count_parameters(meta_gpt(config)) == gpt_parameter_formula(config)


def test_gpt2_sizes_on_the_meta_device():
    counts = {name: count_parameters(meta_gpt(gpt2_config(name))) for name in GPT2_SIZES}
    # the counts of the released checkpoints, which OpenAI later renamed 124M, 355M, 774M, 1558M
    assert counts == {"117M": 124_439_808, "345M": 354_823_168, "762M": 774_030_080,
                      "1542M": 1_557_611_200}
    assert all(p.is_meta for p in meta_gpt(gpt2_config("1542M")).parameters())
    # the published names are reproduced to within 0.5 M by GPT-1's 40,478-token vocabulary
    for name in GPT2_SIZES:
        gpt1_vocab = dataclasses.replace(gpt2_config(name), vocab_size=40_478)
        assert abs(gpt_parameter_formula(gpt1_vocab) / 1e6 - float(name[:-1])) < 0.5


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(SMALL, d_model=16))
    x = torch.randint(0, 11, (4, 16), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1),
                                                 x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    final = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
    assert final.item() < 0.05, final.item()


@pytest.mark.parametrize("name", [GPT_CHECKPOINT, LSTM_CHECKPOINT], ids=["gpt", "lstm"])
def test_shipped_checkpoint_reaches_its_recorded_validation_loss(name):
    path = shipped_checkpoint(name)  # checked against MANIFEST.json
    assert path.stat().st_size < 4e6  # a few MB at most
    model, vocab, record = load_char_lm(path)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    if record["model"] == "gpt":
        assert record["val_loss"] <= 1.30, record["val_loss"]  # nats per character
    corpus = CharCorpus.pydoc()  # the shipped snapshot: the same text on every Python
    assert data_fingerprint(corpus.val) == record["val_sha256"]
    assert vocab.chars == corpus.vocab.chars and len(vocab) == 103
    block_size = training_from_record(record).block_size
    val = evaluate_char_lm(model, corpus.val, block_size, record["eval_windows"])
    assert val == pytest.approx(record["val_loss_subset"], abs=2e-3), val
    if record["model"] == "gpt":
        assert val <= 1.30, val


def test_gpt_beats_the_lstm_at_equal_cpu_time():
    _, _, gpt = load_char_lm()
    _, _, lstm = load_char_lm(shipped_checkpoint(LSTM_CHECKPOINT))
    # about the same CPU time on the machine that trained both (steps set to match it)
    assert 0.9 < lstm["cpu_seconds"] / gpt["cpu_seconds"] < 1.1, (lstm["cpu_seconds"],
                                                                  gpt["cpu_seconds"])
    assert gpt["val_loss"] < lstm["val_loss"] - 0.05, (gpt["val_loss"], lstm["val_loss"])
