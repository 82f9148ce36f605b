"""Chapter 6's inverted dropout against PyTorch's, and the rotary Transformer."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dlbook.attention import MultiHeadAttention, rotary_embedding
from dlbook.prenorm import EncoderLayer, Tagger, TaggerConfig, inverted_dropout
from dlbook.seq2seq import seq2seq_vocab_size
from dlbook.transformer import RotaryAttention, Transformer, TransformerConfig


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_inverted_dropout_draws_the_mask_of_f_dropout(p):
    x = torch.randn(4, 7, 33, dtype=torch.float64)
    torch.manual_seed(3)
    ours = inverted_dropout(x, p)
    torch.manual_seed(3)
    theirs = F.dropout(x, p, training=True)
    torch.manual_seed(3)
    module = torch.nn.Dropout(p).train()(x)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-15)
    assert torch.allclose(ours, module, rtol=0, atol=1e-15)


def test_inverted_dropout_scales_kept_entries_and_keeps_the_mean():
    x = torch.ones(200_000, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    out = inverted_dropout(x, 0.25, generator=gen)
    kept = out != 0
    assert torch.all(out[kept] == 1 / 0.75)
    # the kept share is 0.75 and the mean stays 1, to sampling error (std ~0.001)
    assert abs(kept.double().mean().item() - 0.75) < 0.005
    assert abs(out.mean().item() - 1.0) < 0.01


def test_inverted_dropout_is_the_identity_in_eval_mode_and_at_p_zero():
    x = torch.randn(5, 6)
    assert inverted_dropout(x, 0.5, training=False) is x
    assert inverted_dropout(x, 0.0) is x
    assert torch.equal(torch.nn.Dropout(0.5).eval()(x), inverted_dropout(x, 0.5, False))
    with pytest.raises(ValueError, match="p"):
        inverted_dropout(x, 1.0)


def test_tagger_dropout_acts_in_training_only():
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(n_layers=2, dropout=0.3))
    x = torch.randint(10, (3, 8))
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))
    plain = Tagger(TaggerConfig(n_layers=2))
    plain.load_state_dict(model.state_dict())
    model.eval()
    assert torch.allclose(plain.eval()(x), model(x))
    with pytest.raises(ValueError, match="dropout"):
        TaggerConfig(dropout=1.0)


def test_encoder_layer_dropout_matches_torch_in_eval_mode():
    torch.manual_seed(1)
    ref = torch.nn.TransformerEncoderLayer(
        16, 4, 32, dropout=0.2, activation="gelu", batch_first=True, norm_first=True
    ).double().eval()
    ours = EncoderLayer(16, 4, 32, norm_first=True, dropout=0.2).double().eval()
    ours.self_attn = MultiHeadAttention.from_torch(ref.self_attn).eval()
    with torch.no_grad():
        ours.ln_attn.load_state_dict(ref.norm1.state_dict())
        ours.ln_ff.load_state_dict(ref.norm2.state_dict())
        ours.ff.fc.load_state_dict(ref.linear1.state_dict())
        ours.ff.proj.load_state_dict(ref.linear2.state_dict())
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    assert torch.allclose(ours(x), ref(x), atol=1e-12)


def test_rotary_attention_scores_depend_on_relative_position_only():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 2).double()
    rot = RotaryAttention(16, 2).double()
    rot.load_state_dict(mha.state_dict())
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    _, w = rot(x, x, x, need_weights=True)
    q = rotary_embedding(rot.split_heads(rot.q_proj(x)))
    k = rotary_embedding(rot.split_heads(rot.k_proj(x)))
    expected = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, -1)
    assert torch.allclose(w, expected, atol=1e-12)
    # one token repeated: every diagonal of the scores holds one value
    same = x[:, :1].expand(1, 6, 16)
    q = rotary_embedding(rot.split_heads(rot.q_proj(same)))
    k = rotary_embedding(rot.split_heads(rot.k_proj(same)))
    scores = (q @ k.transpose(-2, -1))[0, 0]
    for offset in range(-4, 5):
        diagonal = scores.diagonal(offset)
        assert diagonal.max() - diagonal.min() < 1e-10
    out_fused, _ = rot(x, x, x)  # the fused kernel gives the same output
    out_ours, _ = rot(x, x, x, need_weights=True)
    assert torch.allclose(out_fused, out_ours, atol=1e-12)
    with pytest.raises(ValueError, match="cache"):
        from dlbook.attention import KVCache

        rot(x, x, x, cache=KVCache())


def test_rotary_transformer_adds_no_positions_and_rotates_self_attention_only():
    config = TransformerConfig(
        seq2seq_vocab_size(4), d_model=16, n_heads=2, n_layers=1, d_ff=32
    )
    rotary = Transformer(dataclasses.replace(config, positions="rotary"))
    assert isinstance(rotary.positions, torch.nn.Identity)
    assert isinstance(rotary.encoder[0].self_attn, RotaryAttention)
    assert isinstance(rotary.decoder[0].self_attn, RotaryAttention)
    assert type(rotary.decoder[0].cross_attn) is MultiHeadAttention
    sinusoidal = Transformer(config)
    assert type(sinusoidal.encoder[0].self_attn) is MultiHeadAttention
    # the same parameters: only where positions enter changes
    assert [n for n, _ in rotary.named_parameters()] == [
        n for n, _ in sinusoidal.named_parameters()
    ]
    src = torch.randint(3, 7, (2, 5))
    src_len = torch.tensor([5, 3])
    tgt_in = torch.randint(3, 7, (2, 4))
    assert rotary(src, src_len, tgt_in).shape == (2, 4, config.vocab_size)
    with pytest.raises(ValueError, match="positions"):
        TransformerConfig(10, positions="alibi")


def test_data_seeds_follow_the_seed_offset(monkeypatch):
    from dlbook.prenorm import reverse_batches
    from dlbook.seq2seq import Seq2SeqTrainConfig, task_batches

    config = Seq2SeqTrainConfig()
    shifted = dataclasses.replace(
        config, training=dataclasses.replace(config.training, seed=1)
    )
    monkeypatch.setenv("DLBOOK_SEED_OFFSET", "0")
    base_src = next(task_batches(shifted, one_length=False)).src
    base_x = next(reverse_batches(10, 6, 4, seed=1))[0]
    monkeypatch.setenv("DLBOOK_SEED_OFFSET", "1")
    # offset 1 at seed 0 draws what offset 0 draws at seed 1
    assert torch.equal(next(task_batches(config, one_length=False)).src, base_src)
    assert torch.equal(next(reverse_batches(10, 6, 4, seed=0))[0], base_x)
