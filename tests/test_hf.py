"""dlbook.hf against Hugging Face transformers, built from small configs with random weights
(no download). transformers is a test-only reference (requirements.txt, not pyproject)."""

import pytest
import torch

from dlbook.hf import from_gpt2_state_dict

transformers = pytest.importorskip("transformers")


def _random_gpt2(activation: str = "gelu_new", seed: int = 0, tie: bool = True):
    config = transformers.GPT2Config(
        vocab_size=101, n_positions=32, n_embd=48, n_layer=3, n_head=4,
        activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=tie)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # GPT-2's init zeroes biases and sets norms to 1: randomize all
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model


@pytest.mark.parametrize("activation, gelu", [("gelu_new", "tanh"), ("gelu", "exact")])
def test_gpt2_logits_match_transformers(activation, gelu):
    reference = _random_gpt2(activation)
    ours = from_gpt2_state_dict(reference.state_dict(), n_heads=4, gelu=gelu)
    idx = torch.randint(0, 101, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(idx).logits
        got = ours(idx)
    assert got.shape == expected.shape == (2, 32, 101)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert ours.config.n_layers == 3 and ours.config.d_model == 48 and ours.config.block_size == 32


def test_gpt2_body_state_dict_without_prefix_and_cached_generation():
    reference = _random_gpt2()
    body = {k.removeprefix("transformer."): v for k, v in reference.state_dict().items()
            if k != "lm_head.weight"}  # the hub's gpt2 weights: GPT2Model keys, tied head
    ours = from_gpt2_state_dict(body, n_heads=4)
    idx = torch.randint(0, 101, (1, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx).logits, atol=1e-5, rtol=1e-5)
    greedy = [ours.generate(idx, 10, temperature=0.0, use_cache=c) for c in (False, True)]
    assert torch.equal(greedy[0], greedy[1])


def test_gpt2_untied_head():
    reference = _random_gpt2(tie=False)
    assert not torch.equal(reference.lm_head.weight, reference.transformer.wte.weight)
    ours = from_gpt2_state_dict(reference.state_dict(), n_heads=4)
    assert not ours.config.tie_weights
    idx = torch.randint(0, 101, (1, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx).logits, atol=1e-5, rtol=1e-5)


def test_gpt2_errors():
    sd = _random_gpt2().state_dict()
    with pytest.raises(ValueError, match="gelu must be one of"):
        from_gpt2_state_dict(sd, n_heads=4, gelu="relu")
    with pytest.raises(ValueError, match="wpe.weight"):
        from_gpt2_state_dict({k: v for k, v in sd.items() if "wpe" not in k}, n_heads=4)
    with pytest.raises(ValueError, match="divisible"):
        from_gpt2_state_dict(sd, n_heads=5)


def test_gpt2_124m_layout_loads_with_the_chapters_call():
    """The chapter's ``from_gpt2_state_dict(GPT2LMHeadModel.from_pretrained("gpt2")
    .state_dict(), n_heads=12)`` on a model of exactly that architecture (GPT2Config's
    defaults are the 124M model) with random weights instead of the download: every
    tensor is taken, the sizes follow from the shapes, and the logits agree."""
    config = transformers.GPT2Config()  # 12 layers, 12 heads, width 768, 1,024 positions
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(config).eval()
    assert sum(p.numel() for p in reference.parameters()) == 124_439_808
    ours = from_gpt2_state_dict(reference.state_dict(), n_heads=12)
    assert (ours.config.n_layers, ours.config.d_model, ours.config.block_size) == (12, 768, 1024)
    assert ours.config.vocab_size == 50257 and ours.config.tie_weights
    assert sum(p.numel() for p in ours.parameters()) == 124_439_808
    idx = torch.randint(0, 50257, (1, 24), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), reference(idx).logits, atol=1e-4, rtol=1e-4)
