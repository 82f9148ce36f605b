"""The public API refuses bad arguments where they are given, with an error that says which.

Each case calls one public function with one bad argument and checks three things: the error
is a ValueError or TypeError (not an IndexError or ZeroDivisionError from deep inside torch),
it is the expected one of the two, and its message names the argument.
"""

from __future__ import annotations

import random

import pytest
import torch

from dlbook import (
    attention,
    autograd,
    bpe,
    cnn,
    data,
    diffusion,
    gpt,
    mlp,
    optim,
    rnn,
    sampling,
    scalarnet,
    text,
    utils,
)

SMALL_GPT = gpt.GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=8)
SMALL_LSTM = rnn.CharLSTMConfig(vocab_size=11, embed_dim=4, hidden_size=8)
IDS = torch.zeros(2, 3, dtype=torch.long)
IMAGES = torch.zeros(2, 1, 8, 8)
KERNELS = torch.zeros(4, 1, 3, 3)
NAN, INF = float("nan"), float("inf")


def _gpt() -> gpt.GPT:
    torch.manual_seed(0)
    return gpt.GPT(SMALL_GPT)


def _lstm() -> rnn.CharLSTM:
    torch.manual_seed(0)
    return rnn.CharLSTM(SMALL_LSTM)


def _mha() -> attention.MultiHeadAttention:
    torch.manual_seed(0)
    return attention.MultiHeadAttention(8, 2)


def _schedule() -> diffusion.NoiseSchedule:
    return diffusion.NoiseSchedule.from_config(diffusion.DiffusionConfig(n_steps=20,
                                                                         schedule="cosine"))


def _mlp_denoiser() -> diffusion.MLPDenoiser:
    return diffusion.MLPDenoiser(diffusion.MLPDenoiserConfig(hidden=8, n_blocks=1, time_dim=4))


def _unet() -> diffusion.TinyUNet:
    return diffusion.TinyUNet(diffusion.UNetConfig(channels=(8, 8), emb_dim=8, groups=4))


# (case id, call, expected error, words its message must contain)
CASES = [
    # sizes: positive ints, and True is not a size
    ("conv_output_size-negative-stride", lambda: cnn.conv_output_size(8, 3, stride=-1),
     ValueError, ["stride", "-1"]),
    ("conv_output_size-zero-size", lambda: cnn.conv_output_size(0, 3), ValueError, ["size"]),
    ("conv_output_size-float-kernel", lambda: cnn.conv_output_size(8, 2.5), TypeError,
     ["kernel_size", "float"]),
    ("conv2d-bool-stride", lambda: cnn.conv2d_im2col(IMAGES, KERNELS, stride=True), TypeError,
     ["stride", "bool"]),
    ("conv2d-negative-padding", lambda: cnn.conv2d_loops(IMAGES, KERNELS, padding=-1),
     ValueError, ["padding", "-1"]),
    ("im2col-zero-kernel", lambda: cnn.im2col(IMAGES, 0), ValueError, ["kernel_size"]),
    ("max_pool-negative-stride", lambda: cnn.max_pool2d(IMAGES, 2, stride=-2), ValueError,
     ["stride"]),
    ("shift_images-float-shift", lambda: cnn.shift_images(IMAGES, 1.5, 0), TypeError, ["dy"]),
    ("conv2d_backward-wrong-grad", lambda: cnn.conv2d_backward(torch.zeros(2, 3, 8, 8), IMAGES,
                                                              KERNELS, 1, 1),
     ValueError, ["grad_y", "C_out=4"]),
    ("RandomShift-bool", lambda: cnn.RandomShift(True), TypeError, ["max_shift"]),
    ("LeNetConfig-zero-classes", lambda: cnn.LeNetConfig(n_classes=0), ValueError,
     ["n_classes"]),
    ("ResNetConfig-bool-width", lambda: cnn.ResNetConfig(width=True), TypeError, ["width"]),
    ("GPTConfig-zero-heads", lambda: gpt.GPTConfig(vocab_size=11, n_heads=0), ValueError,
     ["n_heads"]),
    ("GPTConfig-bool-layers", lambda: gpt.GPTConfig(vocab_size=11, n_layers=True), TypeError,
     ["n_layers", "bool"]),
    ("MultiHeadAttention-zero-heads", lambda: attention.MultiHeadAttention(8, 0), ValueError,
     ["n_heads"]),
    ("causal_mask-zero", lambda: attention.causal_mask(0), ValueError, ["t_q"]),
    ("causal_mask-float", lambda: attention.causal_mask(2.0), TypeError, ["t_q"]),
    ("sinusoidal_positions-odd", lambda: attention.sinusoidal_positions(4, 5), ValueError,
     ["d_model"]),
    ("KVCache-zero", lambda: attention.KVCache(0), ValueError, ["max_len"]),
    ("RNNCell-zero-hidden", lambda: rnn.RNNCell(3, 0), ValueError, ["hidden_size"]),
    ("LSTMCell-init_state-bool", lambda: rnn.LSTMCell(3, 4).init_state(True), TypeError,
     ["batch_size"]),
    ("CharLSTMConfig-zero-hidden", lambda: rnn.CharLSTMConfig(vocab_size=5, hidden_size=0),
     ValueError, ["hidden_size"]),
    ("get_batch-bool-batch", lambda: text.get_batch(torch.arange(20), 4, True), TypeError,
     ["batch_size"]),
    ("make_seq2seq_data-bool-n", lambda: text.make_seq2seq_data(True, 1, 3), TypeError, ["n"]),
    ("make_rings-one-point", lambda: data.make_rings(1), ValueError, ["n", ">= 2"]),
    ("make_blobs-float-n", lambda: data.make_blobs(2.5, [[0.0, 0.0]]), TypeError, ["n"]),
    ("BPETokenizer-train-float-vocab", lambda: bpe.BPETokenizer.train("abcabc", 5.0),
     TypeError, ["vocab_size"]),
    ("learn_merges-negative", lambda: bpe.learn_merges("abab", -1), ValueError, ["n_merges"]),
    ("MLPConfig-zero-width", lambda: mlp.MLPConfig(sizes=(4, 0, 2)), ValueError, ["sizes"]),
    ("init_weight-zero-fan-in", lambda: mlp.init_weight(0, 3), ValueError, ["fan_in"]),
    ("ScalarMLP-bool-size", lambda: scalarnet.ScalarMLP([2, True, 1]), TypeError, ["sizes"]),
    ("sliced_wasserstein-zero", lambda: diffusion.sliced_wasserstein(
        torch.zeros(3, 2), torch.zeros(3, 2), n_projections=0), ValueError, ["n_projections"]),
    ("timestep_embedding-zero-dim", lambda: diffusion.timestep_embedding(
        torch.zeros(2, dtype=torch.long), 0), ValueError, ["dim"]),
    ("UNetConfig-bool-groups", lambda: diffusion.UNetConfig(groups=True), TypeError,
     ["groups"]),
    ("time_runs-zero-repeats", lambda: utils.time_runs(lambda: None, 0), ValueError,
     ["repeats"]),
    # counts that may be 0 but not negative
    ("gpt-generate-negative-tokens", lambda: _gpt().generate(IDS, -1), ValueError,
     ["max_new_tokens", "-1"]),
    ("lstm-generate-float-tokens", lambda: _lstm().generate(IDS, 2.0), TypeError,
     ["max_new_tokens"]),
    ("positions-negative-start", lambda: attention.LearnedPositions(8, 4)(
        torch.zeros(1, 2, 4), start=-1), ValueError, ["start"]),
    # probabilities and other numbers in range; NaN and infinity where meaningless
    ("GPTConfig-dropout-one", lambda: gpt.GPTConfig(vocab_size=11, dropout=1.0), ValueError,
     ["dropout"]),
    ("attention-dropout-nan", lambda: attention.attention(
        torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), dropout_p=NAN),
     ValueError, ["dropout_p"]),
    ("sample_next-temperature-nan", lambda: sampling.sample_next(torch.zeros(2, 5), NAN),
     ValueError, ["temperature"]),
    ("sample_next-top_p-zero", lambda: sampling.sample_next(torch.zeros(2, 5), top_p=0.0),
     ValueError, ["top_p"]),
    ("sample_next-top_k-bool", lambda: sampling.sample_next(torch.zeros(2, 5), top_k=True),
     TypeError, ["top_k"]),
    ("gpt-generate-top_p", lambda: _gpt().generate(IDS, 2, top_p=1.5), ValueError, ["top_p"]),
    ("SGD-lr-nan", lambda: optim.SGD([torch.zeros(2)], lr=NAN), ValueError, ["lr"]),
    ("Adam-weight_decay-inf", lambda: optim.Adam([torch.zeros(2)], weight_decay=INF),
     ValueError, ["weight_decay"]),
    ("SGD-lr-string", lambda: optim.SGD([torch.zeros(2)], lr="0.1"), TypeError, ["lr"]),
    ("Dropout-p-negative", lambda: mlp.Dropout(-0.1), ValueError, ["p"]),
    ("make_linear_data-noise-nan", lambda: data.make_linear_data(4, [1.0], noise=NAN),
     ValueError, ["noise"]),
    ("make_blobs-std-inf", lambda: data.make_blobs(4, [[0.0]], std=INF), ValueError, ["std"]),
    ("CharCorpus-val_fraction", lambda: text.CharCorpus.from_text("abcdef", 1.0), ValueError,
     ["val_fraction"]),
    ("diffusion_loss-p_uncond", lambda: diffusion.diffusion_loss(
        _mlp_denoiser(), torch.zeros(2, 2), _schedule(), p_uncond=2.0), ValueError,
     ["p_uncond"]),
    ("ddim-eta-negative", lambda: diffusion.ddim_sample(
        _mlp_denoiser(), (2, 2), _schedule(), 5, eta=-1.0), ValueError, ["eta"]),
    ("ddpm-guidance-nan", lambda: diffusion.ddpm_sample(
        _mlp_denoiser(), (2, 2), _schedule(), guidance=NAN), ValueError, ["guidance"]),
    ("sgd_step-lr-zero", lambda: scalarnet.sgd_step([], 0.0), ValueError, ["lr"]),
    ("LSTMCell-forget_bias-inf", lambda: rnn.LSTMCell(2, 3, forget_bias=INF), ValueError,
     ["forget_bias"]),
    # token ids within the vocabulary
    ("gpt-forward-id-too-large", lambda: _gpt()(torch.tensor([[1, 11]])), ValueError,
     ["idx", "[0, 11)"]),
    ("gpt-forward-negative-id", lambda: _gpt()(torch.tensor([[-1, 2]])), ValueError, ["idx"]),
    ("gpt-generate-id-too-large", lambda: _gpt().generate(torch.tensor([[99]]), 1), ValueError,
     ["idx"]),
    ("lstm-forward-id-too-large", lambda: _lstm()(torch.tensor([[11]])), ValueError, ["idx"]),
    ("gpt-forward-float-ids", lambda: _gpt()(torch.zeros(1, 2)), ValueError, ["idx", "int64"]),
    ("unet-label-too-large", lambda: _unet()(torch.zeros(2, 1, 8, 8), torch.zeros(2).long(),
                                             torch.tensor([3, 11])), ValueError, ["y"]),
    ("CharVocab-decode-id", lambda: text.CharVocab("ab").decode([0, 2]), ValueError, ["ids"]),
    # matching batch sizes and widths
    ("mha-key-batch-mismatch", lambda: _mha()(torch.zeros(2, 3, 8), torch.zeros(1, 3, 8),
                                              torch.zeros(1, 3, 8)), ValueError, ["key"]),
    ("mha-mask-and-is_causal", lambda: _mha()(torch.zeros(1, 3, 8), torch.zeros(1, 3, 8),
                                              torch.zeros(1, 3, 8),
                                              attention.causal_mask(3), is_causal=True),
     ValueError, ["mask", "is_causal"]),
    ("mha-float-mask", lambda: _mha()(torch.zeros(1, 3, 8), torch.zeros(1, 3, 8),
                                      torch.zeros(1, 3, 8), torch.ones(3, 3)), TypeError,
     ["mask"]),
    ("KVCache-head-mismatch", lambda: _cache_with(torch.zeros(1, 2, 3, 4))
     .append(torch.zeros(1, 3, 1, 4), torch.zeros(1, 3, 1, 4)), ValueError, ["k"]),
    ("KVCache-over-max_len", lambda: attention.KVCache(2).append(
        torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)), ValueError, ["max_len"]),
    ("mlp-Linear-width", lambda: mlp.Linear(torch.zeros(3, 4), torch.zeros(3)).forward(
        torch.zeros(2, 5)), ValueError, ["x", "(B, 4)"]),
    ("q_sample-t-batch", lambda: diffusion.q_sample(
        torch.zeros(2, 2), torch.zeros(3).long(), torch.zeros(2, 2), torch.ones(20)),
     ValueError, ["t"]),
    ("denoiser-t-batch", lambda: _mlp_denoiser()(torch.zeros(2, 2), torch.zeros(3).long()),
     ValueError, ["t"]),
    ("diffusion_loss-y-batch", lambda: diffusion.diffusion_loss(
        _unet(), torch.zeros(2, 1, 8, 8), _schedule(), y=torch.zeros(3).long()), ValueError,
     ["y"]),
    ("image_grid-labels", lambda: _image_grid_short_labels(), ValueError, ["labels"]),
    ("optim-step-not-tensors", lambda: optim.SGD([torch.zeros(2)], lr=0.1).step([[0.0, 0.0]]),
     TypeError, ["grads"]),
    # recurrent states of the right structure
    ("RNNCell-h-batch", lambda: rnn.RNNCell(3, 4)(torch.zeros(2, 3), torch.zeros(5, 4)),
     ValueError, ["h", "B=2"]),
    ("GRUCell-h-width", lambda: rnn.GRUCell(3, 4)(torch.zeros(2, 3), torch.zeros(2, 5)),
     ValueError, ["h", "H=4"]),
    ("LSTMCell-state-not-pair", lambda: rnn.LSTMCell(3, 4)(torch.zeros(2, 3),
                                                          torch.zeros(2, 4)),
     TypeError, ["state", "(h, c)"]),
    ("LSTMCell-c-shape", lambda: rnn.LSTMCell(3, 4)(torch.zeros(2, 3),
                                                   (torch.zeros(2, 4), torch.zeros(2, 3))),
     ValueError, ["c"]),
    ("rnn_unroll-not-a-cell", lambda: rnn.rnn_unroll(torch.nn.Linear(3, 4),
                                                     torch.zeros(2, 5, 3)), TypeError,
     ["cell"]),
    ("rnn_unroll-empty-sequence", lambda: rnn.rnn_unroll(rnn.RNNCell(3, 4),
                                                         torch.zeros(2, 0, 3)), ValueError,
     ["x", "T >= 1"]),
    ("CharLSTM-state-shape", lambda: _lstm()(IDS, (torch.zeros(1, 2, 8), torch.zeros(2, 8))),
     ValueError, ["state", "n_layers"]),
    ("CharLSTM-state-not-pair", lambda: _lstm()(IDS, torch.zeros(1, 2, 8)), TypeError,
     ["state"]),
    ("gpt-caches-wrong-count", lambda: _gpt()(IDS, [attention.KVCache(), attention.KVCache()]),
     ValueError, ["caches", "KVCache"]),
    # types
    ("Value-string", lambda: autograd.Value("1.0"), TypeError, ["Value data", "str"]),
    ("Value-bool", lambda: autograd.Value(True), TypeError, ["Value data", "bool"]),
    ("grad_reverse-not-callable", lambda: autograd.grad_reverse(3, [1.0]), TypeError, ["f"]),
    ("grad_forward-xs-not-sequence", lambda: autograd.grad_forward(lambda x: x, 2.0), TypeError,
     ["xs"]),
    ("model_device-not-module", lambda: utils.model_device("cpu"), TypeError, ["model"]),
    ("Neuron-rng", lambda: scalarnet.Neuron(2, rng=0), TypeError, ["rng"]),
    ("make_betas-not-config", lambda: diffusion.make_betas({"n_steps": 10}), TypeError,
     ["config"]),
    ("sampling-schedule-type", lambda: diffusion.ddpm_sample(_mlp_denoiser(), (2, 2), None),
     TypeError, ["schedule"]),
    ("chunks-not-str", lambda: bpe.chunks(b"abc"), TypeError, ["text"]),
    # token ids outside the vocabulary of the encoder-decoders
    ("transformer-src-id", lambda: _transformer().encode(torch.full((1, 3), 99),
                                                          torch.tensor([3])),
     ValueError, ["src", "99"]),
    ("transformer-tgt-id", lambda: _transformer()(torch.ones(1, 3, dtype=torch.long),
                                                  torch.tensor([3]), torch.full((1, 2), -1)),
     ValueError, ["tgt_in", "-1"]),
    ("seq2seq-src-id", lambda: _seq2seq().encode(torch.full((1, 3), 99), torch.tensor([3])),
     ValueError, ["src", "99"]),
    ("seq2seq-tgt-id", lambda: _seq2seq()(torch.ones(1, 3, dtype=torch.long),
                                          torch.tensor([3]), torch.full((1, 2), 50)),
     ValueError, ["tgt_in", "50"]),
]


def _transformer():
    from dlbook.transformer import Transformer, TransformerConfig

    return Transformer(TransformerConfig(13, d_model=8, n_heads=2, n_layers=1, d_ff=16))


def _seq2seq():
    from dlbook.seq2seq import Seq2Seq, Seq2SeqConfig

    return Seq2Seq(Seq2SeqConfig(13, embed_dim=4, hidden_size=8))


def _cache_with(k: torch.Tensor) -> attention.KVCache:
    cache = attention.KVCache()
    cache.append(k, k)
    return cache


def _image_grid_short_labels():
    import matplotlib

    matplotlib.use("Agg")
    from dlbook.plot import image_grid

    return image_grid(torch.zeros(3, 8, 8), labels=[1, 2])


@pytest.mark.parametrize("call, error, words", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_input_is_refused_with_a_clear_error(call, error, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert info.type is error, f"expected {error.__name__}, got {info.type.__name__}: {info.value}"
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in the message {message!r}"


def test_the_cases_cover_enough_of_the_api():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)  # ids are unique


def test_check_helpers_accept_good_values():
    assert utils.check_positive_int(3, "n") == 3
    assert utils.check_positive_int(0, "n", minimum=0) == 0
    assert utils.check_int(-2, "shift") == -2
    assert utils.check_real(0.5, "p", 0, 1) == 0.5 and utils.check_real(1, "lr", 0) == 1.0
    assert utils.check_ids(torch.tensor([[0, 4]]), 5) is not None
    assert utils.check_ids(torch.zeros(0, 3, dtype=torch.long), 5).shape == (0, 3)


def test_value_keeps_accepting_ints_and_floats():
    assert autograd.Value(2).data == 2.0 and type(autograd.Value(2).data) is float
    assert (autograd.Value(1.5) * 2 + 1).data == 4.0
    rng = random.Random(0)
    assert scalarnet.Neuron(2, rng)([1, 2.0]).data == scalarnet.Neuron(2, random.Random(0))(
        [1.0, 2.0]).data
