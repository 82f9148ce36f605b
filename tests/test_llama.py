"""dlbook.llama and GPT's LLaMA switches (rotary positions, grouped-query attention, no
biases) against Hugging Face's LlamaForCausalLM built from a small config with random
weights (no download), and GroupedQueryAttention against PyTorch's scaled_dot_product_attention
with enable_gqa=True. transformers is a test-only reference."""

import dataclasses

import pytest
import torch

from dlbook.attention import GroupedQueryAttention, KVCache, repeat_kv
from dlbook.gpt import GPT, GPTConfig, count_parameters, gpt_parameter_formula
from dlbook.llama import from_llama_state_dict, kv_cache_bytes, rope_halves_to_pairs

transformers = pytest.importorskip("transformers")


def _random_llama(n_heads=4, n_kv_heads=2, tie=False, bias=False, seed=0):
    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
        num_attention_heads=n_heads, num_key_value_heads=n_kv_heads,
        max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=tie, attention_bias=bias)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at 1: randomize every tensor
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


@pytest.mark.parametrize("n_heads, n_kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_llama_logits_match_transformers(n_heads, n_kv_heads):
    reference = _random_llama(n_heads, n_kv_heads)
    ours = from_llama_state_dict(reference.state_dict(), n_heads, n_kv_heads, block_size=64)
    idx = torch.randint(0, 97, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(idx).logits
        got = ours(idx)
    assert got.shape == expected.shape == (2, 40, 97)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    c = ours.config
    assert (c.n_layers, c.d_model, c.d_ff, c.kv_heads) == (3, 64, 160, n_kv_heads)
    assert not c.tie_weights
    assert count_parameters(ours) == sum(p.numel() for p in reference.parameters())
    assert count_parameters(ours) == gpt_parameter_formula(c)


def test_llama_with_biases_and_tied_head():
    reference = _random_llama(tie=True, bias=True)
    ours = from_llama_state_dict(reference.state_dict(), 4, 2, block_size=64)
    assert ours.config.attn_bias and ours.config.tie_weights
    idx = torch.randint(0, 97, (1, 17), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx).logits, atol=1e-5, rtol=1e-5)


def test_cached_generation_with_rope_equals_recomputing():
    reference = _random_llama()
    ours = from_llama_state_dict(reference.state_dict(), 4, 2, block_size=64)
    idx = torch.randint(0, 97, (2, 5), generator=torch.Generator().manual_seed(3))
    greedy = [ours.generate(idx, 20, temperature=0.0, use_cache=c) for c in (False, True)]
    assert torch.equal(greedy[0], greedy[1])
    reference.generation_config.eos_token_id = None  # never stop early
    with torch.no_grad():  # and the same continuation as transformers' own model
        expected = reference.generate(idx, max_new_tokens=20, do_sample=False,
                                      attention_mask=torch.ones_like(idx), pad_token_id=0)
    assert torch.equal(greedy[1], expected)


def test_rope_reordering_is_a_permutation_within_each_head():
    w = torch.arange(4 * 8 * 3, dtype=torch.float64).view(32, 3)
    out = rope_halves_to_pairs(w, n_heads=4)
    assert sorted(out[:, 0].tolist()) == sorted(w[:, 0].tolist())
    # head 1: rows 8..15, halves (8..11, 12..15) interleaved to 8, 12, 9, 13, ...
    assert out[8:16, 0].tolist() == [w[r, 0].item() for r in (8, 12, 9, 13, 10, 14, 11, 15)]


@pytest.mark.parametrize("n_kv_heads", [1, 2, 6])
def test_gqa_matches_sdpa_enable_gqa(n_kv_heads):
    torch.manual_seed(0)
    attn = GroupedQueryAttention(48, 6, n_kv_heads).double().eval()
    x = torch.randn(2, 9, 48, dtype=torch.float64)
    out, _ = attn(x, x, x, is_causal=True)
    B, T = 2, 9
    q = attn.q_proj(x).view(B, T, 6, 8).transpose(1, 2)
    k = attn.k_proj(x).view(B, T, n_kv_heads, 8).transpose(1, 2)
    v = attn.v_proj(x).view(B, T, n_kv_heads, 8).transpose(1, 2)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                           enable_gqa=True)
    ref = attn.out_proj(ref.transpose(1, 2).reshape(B, T, 48))
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    # our own attention (need_weights) gives the same, with weights over n_heads heads
    out_w, weights = attn(x, x, x, need_weights=True, is_causal=True)
    torch.testing.assert_close(out_w, ref, atol=1e-12, rtol=1e-12)
    assert weights.shape == (2, 6, 9, 9)


def test_gqa_cache_holds_only_the_kv_heads():
    torch.manual_seed(0)
    attn = GroupedQueryAttention(32, 4, 1, rope_base=10000.0).eval()
    x = torch.randn(1, 6, 32)
    full, _ = attn(x, x, x, is_causal=True)
    cache = KVCache()
    steps = [attn(x[:, t:t + 1], x[:, t:t + 1], x[:, t:t + 1], cache=cache, is_causal=True)[0]
             for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-6, rtol=1e-5)
    assert cache.k.shape == (1, 1, 6, 8)


def test_repeat_kv_and_errors():
    x = torch.arange(2 * 3).view(1, 2, 3, 1)
    assert repeat_kv(x, 2)[0, :, 0, 0].tolist() == [0, 0, 3, 3]
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        GroupedQueryAttention(32, 4, 3)
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        GPTConfig(vocab_size=10, n_heads=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="positions"):
        GPTConfig(vocab_size=10, positions="alibi")
    with pytest.raises(ValueError, match="not a LLaMA state dict"):
        from_llama_state_dict({}, 4, 2)


def test_kv_cache_bytes_is_what_the_cache_holds():
    for n_kv in (4, 2, 1):
        config = GPTConfig(vocab_size=20, block_size=32, n_layers=2, n_heads=4, d_model=32,
                           n_kv_heads=n_kv, positions="rope", dropout=0.0)
        model = GPT(config).eval()
        caches = [KVCache(32) for _ in model.blocks]
        with torch.no_grad():
            model(torch.randint(0, 20, (1, 11)), caches)
        held = sum(c.k.nbytes + c.v.nbytes for c in caches)
        assert held == kv_cache_bytes(config, 11, bytes_per_value=4)


def test_default_config_is_unchanged():
    # the new fields' defaults give GPT-2's architecture: same parameter names and shapes
    config = GPTConfig(vocab_size=30, block_size=16, n_layers=2, n_heads=2, d_model=16)
    torch.manual_seed(0)
    model = GPT(config)
    assert "pos_embed.embed.weight" in dict(model.named_parameters())
    assert not any(isinstance(m, GroupedQueryAttention) for m in model.modules())
    assert count_parameters(model) == gpt_parameter_formula(config)
    llama = dataclasses.replace(config, positions="rope", n_kv_heads=1, attn_bias=False,
                                norm="rmsnorm", mlp="swiglu", tie_weights=False)
    assert count_parameters(GPT(llama)) == gpt_parameter_formula(llama)
