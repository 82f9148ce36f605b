"""The diagrams draw without error and contain what they should."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dlbook.diagrams import residual_block, transformer_blocks, unrolled_rnn  # noqa: E402


def test_unrolled_rnn_draws_every_step():
    fig, ax = plt.subplots()
    unrolled_rnn(ax, steps=3)
    texts = [t.get_text() for t in ax.texts]
    assert r"$\mathbf{h}_{T}$" in texts and r"$\mathbf{x}_{1}$" in texts and r"$L$" in texts
    assert len(ax.patches) == 1 + 2 * 3 + 1  # h_0, (x_t, h_t) per step, the loss
    with pytest.raises(ValueError, match="steps"):
        unrolled_rnn(ax, steps=1)
    plt.close(fig)


def test_residual_block_has_one_shortcut():
    fig, ax = plt.subplots()
    residual_block(ax)
    assert sum(t.get_text() == "+" for t in ax.texts) == 1
    plt.close(fig)


def test_transformer_blocks_show_cross_attention_once():
    fig, ax = plt.subplots()
    transformer_blocks(ax)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("cross-attention") == 1 and texts.count("layer norm") == 5
    plt.close(fig)


def test_norm_placement_puts_two_norms_on_the_post_ln_stream():
    from dlbook.diagrams import norm_placement

    fig, ax = plt.subplots()
    norm_placement(ax)
    texts = [t.get_text() for t in ax.texts]
    # post-LN: 2 norms on the stream; pre-LN: 2 on the branches and a final one
    assert texts.count(r"$\mathrm{LN}$") == 4 and texts.count("+") == 4
    assert sum("once, after the last block" in t for t in texts) == 1
    plt.close(fig)


def test_dense_block_connects_every_earlier_map():
    from dlbook.diagrams import dense_block

    fig, ax = plt.subplots()
    dense_block(ax, n_layers=3)
    # x_0..x_3 and, per layer, a concatenation and H_l: 4 + 2 * 3 boxes
    assert len(ax.patches) == 4 + 2 * 3
    with pytest.raises(ValueError, match="n_layers"):
        dense_block(ax, n_layers=0)
    plt.close(fig)
