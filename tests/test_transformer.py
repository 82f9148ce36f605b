"""Tests of dlbook.transformer: blocks against PyTorch's layers, masks, decoding, learning."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbook.attention import MultiHeadAttention, causal_mask, padding_mask
from dlbook.seq2seq import Seq2SeqTrainConfig, seq2seq_vocab_size
from dlbook.text import EOS, PAD, make_seq2seq_data
from dlbook.train import TrainConfig
from dlbook.transformer import Transformer, TransformerBlock, TransformerConfig, train_transformer

F = torch.nn.functional


def _copy_linear(ours: torch.nn.Linear, theirs: torch.nn.Linear) -> None:
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)


def _copy_norm(ours: torch.nn.LayerNorm, theirs: torch.nn.LayerNorm) -> None:
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)


def _torch_layer(cls, d_model, n_heads, d_ff, seed):
    torch.manual_seed(seed)
    layer = cls(d_model, n_heads, d_ff, dropout=0.0, activation="gelu", batch_first=True,
                norm_first=True).double().eval()
    with torch.no_grad():  # non-trivial layer-norm parameters, so a swapped norm would show
        for p in layer.parameters():
            if p.dim() == 1:
                p.normal_()
    return layer


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), n_heads=st.sampled_from([1, 2, 4]), T=st.integers(1, 8),
       seed=st.integers(0, 10_000))
def test_encoder_block_matches_torch_pre_ln_layer(B, n_heads, T, seed):
    d_model, d_ff = 4 * n_heads, 12
    ref = _torch_layer(torch.nn.TransformerEncoderLayer, d_model, n_heads, d_ff, seed)
    ours = TransformerBlock(d_model, n_heads, d_ff).double().eval()
    ours.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
    _copy_norm(ours.ln_self, ref.norm1)
    _copy_norm(ours.ln_ff, ref.norm2)
    _copy_linear(ours.ff.fc, ref.linear1)
    _copy_linear(ours.ff.proj, ref.linear2)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, d_model, generator=gen, dtype=torch.float64)
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    keep = padding_mask(lengths, T)
    expected = ref(x, src_key_padding_mask=~keep[:, 0, 0])
    out, _ = ours(x, keep)
    # PyTorch's fast path may return zeros at padded positions; compare the real ones
    real = keep[:, 0, 0]
    torch.testing.assert_close(out[real], expected[real])


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), n_heads=st.sampled_from([1, 2]), T=st.integers(1, 6),
       S=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_decoder_block_matches_torch_pre_ln_layer(B, n_heads, T, S, seed):
    d_model, d_ff = 4 * n_heads, 10
    ref = _torch_layer(torch.nn.TransformerDecoderLayer, d_model, n_heads, d_ff, seed)
    ours = TransformerBlock(d_model, n_heads, d_ff, cross_attention=True).double().eval()
    ours.self_attn = MultiHeadAttention.from_torch(ref.self_attn)
    ours.cross_attn = MultiHeadAttention.from_torch(ref.multihead_attn)
    for mine, theirs in ((ours.ln_self, ref.norm1), (ours.ln_cross, ref.norm2),
                         (ours.ln_ff, ref.norm3)):
        _copy_norm(mine, theirs)
    _copy_linear(ours.ff.fc, ref.linear1)
    _copy_linear(ours.ff.proj, ref.linear2)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, d_model, generator=gen, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(B, S, d_model, generator=gen, dtype=torch.float64)
    keep = padding_mask(torch.randint(1, S + 1, (B,), generator=gen), S)
    expected = ref(x, memory, tgt_mask=~causal_mask(T), memory_key_padding_mask=~keep[:, 0, 0])
    out, weights = ours(x, causal_mask(T), memory, keep, need_weights=True)
    torch.testing.assert_close(out, expected)
    assert weights.shape == (B, n_heads, T, S)
    g, g_ref = (torch.autograd.grad(y.square().sum(), x)[0] for y in (out, expected))
    torch.testing.assert_close(g, g_ref)


def small_transformer(seed=0, **sizes):
    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size=seq2seq_vocab_size(5), max_len=16, d_model=16,
                               n_heads=2, n_layers=2, d_ff=32, **sizes)
    return Transformer(config).double().eval()


def test_padding_does_not_change_the_outputs():
    model = small_transformer()
    data = make_seq2seq_data(6, 1, 7, n_symbols=5, generator=torch.Generator().manual_seed(0))
    logits = model(data.src, data.src_len, data.tgt[:, :-1])
    # extra padding columns, and garbage written into the padding, change nothing
    wider = F.pad(data.src, (0, 4), value=PAD)
    noisy = wider.clone()
    noisy[torch.arange(11)[None, :] >= data.src_len[:, None]] = 4
    for src in (wider, noisy):
        torch.testing.assert_close(model(src, data.src_len, data.tgt[:, :-1]), logits)


def test_decoder_cannot_see_later_target_tokens():
    model = small_transformer()
    data = make_seq2seq_data(4, 6, 6, n_symbols=5, generator=torch.Generator().manual_seed(1))
    tgt_in = data.tgt[:, :-1]
    changed = tgt_in.clone()
    changed[:, 4:] = 3
    before, after = (model(data.src, data.src_len, t) for t in (tgt_in, changed))
    torch.testing.assert_close(after[:, :4], before[:, :4], rtol=0, atol=1e-12)


def test_greedy_decode_agrees_with_teacher_forcing_on_its_own_output():
    model = small_transformer(seed=2)
    data = make_seq2seq_data(5, 2, 6, n_symbols=5, generator=torch.Generator().manual_seed(2))
    pred = model.greedy_decode(data.src, data.src_len, max_len=8)
    assert pred.shape == (5, 8)
    tgt_in = torch.cat([data.tgt[:, :1], pred[:, :-1]], dim=1)  # BOS, then its own tokens
    argmax = model(data.src, data.src_len, tgt_in).argmax(dim=-1)
    for row, am in zip(pred, argmax):
        stop = int((row == EOS).nonzero()[0]) + 1 if bool((row == EOS).any()) else len(row)
        assert torch.equal(row[:stop], am[:stop])
        assert bool((row[stop:] == PAD).all())


def test_cross_attention_maps_and_errors():
    model = small_transformer()
    data = make_seq2seq_data(3, 4, 4, n_symbols=5, generator=torch.Generator().manual_seed(3))
    memory, mask = model.encode(data.src, data.src_len)
    logits, maps = model.decode(data.tgt[:, :-1], memory, mask, need_weights=True)
    assert len(maps) == 2 and maps[0].shape == (3, 2, 5, 4)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(3, 2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="src must be"):
        model.encode(data.src, data.src_len[:2])
    with pytest.raises(ValueError, match="needs memory"):
        model.decoder[0](torch.zeros(1, 2, 16, dtype=torch.float64))


def test_overfits_one_batch():
    model = small_transformer().float().train()
    data = make_seq2seq_data(8, 3, 6, n_symbols=5, generator=torch.Generator().manual_seed(4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        logits = model(data.src, data.src_len, data.tgt[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), data.tgt[:, 1:].flatten(), ignore_index=PAD)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()



def test_train_transformer_learns_to_copy_on_mixed_length_batches():
    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=seq2seq_vocab_size(4), max_len=16, d_model=32,
                               n_heads=2, n_layers=1, d_ff=64)
    model = Transformer(config)
    training = TrainConfig(steps=120, batch_size=32, lr=3e-3, grad_clip=1.0, progress=False)
    task = Seq2SeqTrainConfig(training=training, min_len=1, max_len=5, n_symbols=4, task="copy")
    history = train_transformer(model, task)
    losses = history.step_loss
    assert len(losses) == 120 and history.lr == [3e-3] * 120
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10, losses
    with pytest.raises(TypeError, match="config must be a Seq2SeqTrainConfig"):
        train_transformer(model, training)
