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
    # post-LN: 2 norms on the stream; pre-LN: 2 on the branches and a final one, on the
    # stream's axis below its end
    assert texts.count(r"$\mathrm{LN}$") == 5 and texts.count("+") == 4
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


def _boxes(ax):
    """The data-space rectangles (x0, y0, x1, y1) of every box and circle, less the
    background outline."""
    out = []
    for patch in ax.patches:
        if patch.get_gid() == "outline":
            continue
        extent = patch.get_window_extent().transformed(ax.transData.inverted())
        out.append((extent.x0, extent.y0, extent.x1, extent.y1))
    return out


def _segments(ax):
    """Every straight piece of line: the plotted lines and the arrows (start, end)."""
    out = []
    for line in ax.lines:
        if line.get_linestyle() in ("None", ""):
            continue  # markers only: the junction dots
        points = list(zip(line.get_xdata(), line.get_ydata()))
        out += list(zip(points, points[1:]))
    for text in ax.texts:
        if isinstance(text, matplotlib.text.Annotation):
            assert "rad=0.0" in str(text.arrowprops.get("connectionstyle", "rad=0.0"))
            out.append((text.xyann, text.xy))
    return out


def _crosses(segment, rect, margin):
    """Whether the segment passes through the rectangle shrunk by margin on each side."""
    (xa, ya), (xb, yb) = segment
    x0, y0, x1, y1 = rect[0] + margin, rect[1] + margin, rect[2] - margin, rect[3] - margin
    for k in range(201):
        x, y = xa + (xb - xa) * k / 200, ya + (yb - ya) * k / 200
        if x0 < x < x1 and y0 < y < y1:
            return True
    return False


def _collisions(fig, ax):
    """Lines through boxes, and labels that touch a line or a box they do not sit in."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes, segments, found, labels = _boxes(ax), _segments(ax), [], []
    for segment in segments:
        found += [f"line {segment} through box {b}" for b in boxes
                  if _crosses(segment, b, 0.03)]  # fmt: skip
    for text in ax.texts:
        if isinstance(text, matplotlib.text.Annotation) or not text.get_text():
            continue
        e = text.get_window_extent(renderer).transformed(ax.transData.inverted())
        label = (e.x0, e.y0, e.x1, e.y1)
        x, y = text.get_position()
        home = [b for b in boxes if b[0] < x < b[2] and b[1] < y < b[3]]
        if home:  # a box's own label must fit inside it
            b = home[0]
            if not (b[0] <= e.x0 and e.x1 <= b[2] and b[1] <= e.y0 and e.y1 <= b[3]):
                found.append(f"{text.get_text()!r} sticks out of its box")
            continue
        found += [f"{text.get_text()!r} on a box" for b in boxes
                  if b[0] < e.x1 and e.x0 < b[2] and b[1] < e.y1 and e.y0 < b[3]]  # fmt: skip
        found += [f"{text.get_text()!r} on line {s}" for s in segments
                  if _crosses(s, label, 0.0)]  # fmt: skip
        found += [f"{text.get_text()!r} on {other!r}" for other, o in labels
                  if o[0] < e.x1 and e.x0 < o[2] and o[1] < e.y1 and e.y0 < o[3]]  # fmt: skip
        labels.append((text.get_text(), label))
    return found


def test_lstm_cell_has_three_gates_a_candidate_and_no_collisions():
    from dlbook.diagrams import lstm_cell

    fig, ax = plt.subplots(figsize=(7.2, 4.2))  # the chapter's size
    lstm_cell(ax)
    texts = [t.get_text() for t in ax.texts]
    # sigmoid gates f, i, o; tanh for the candidate g and for the output tanh(c_t)
    assert texts.count(r"$\sigma$") == 3 and texts.count(r"$\tanh$") == 2
    # products f*c, i*g, o*tanh(c) and the one sum on the cell's path
    assert texts.count(r"$\odot$") == 3 and texts.count(r"$+$") == 1
    for name in ("c_{t-1}", "c_t", "h_{t-1}", "h_t", "x_t", "f_t", "i_t", "g_t", "o_t"):
        assert sum(t.endswith(f"{{{name[0]}}}_{name[2:]}$") for t in texts) == 1, name
    assert _collisions(fig, ax) == []
    plt.close(fig)


def test_encoder_decoder_bridges_by_the_final_state_only():
    from dlbook.diagrams import encoder_decoder

    fig, ax = plt.subplots(figsize=(9.5, 3.4))  # the chapter's size
    encoder_decoder(ax, source="idg")
    texts = [t.get_text() for t in ax.texts]
    # 3 encoder steps, 4 decoder steps (the last predicts EOS)
    assert texts.count("LSTM") == 3 + 4
    # teacher forcing: the decoder reads BOS and the true reversed letters
    arrows = [t for t in ax.texts if isinstance(t, matplotlib.text.Annotation)]
    assert texts.count("BOS") == 1 and texts.count("EOS") == 1
    # one arrow joins the encoder to the decoder: encoder and decoder steps are joined
    # by 2 and 3 arrows, each cell reads a token (7), the decoder writes 4: 2 + 3 + 1
    assert len(arrows) == 2 + 3 + 1 + 7 + 4
    assert _collisions(fig, ax) == []
    with pytest.raises(ValueError, match="source"):
        encoder_decoder(ax, source="")
    plt.close(fig)
