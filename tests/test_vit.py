"""Tests of dlbook.vit: patch embeddings, ViT against transformers' ViT, rollout, Swin windows."""

import pytest
import torch

from dlbook.vit import (
    BiasRunConfig,
    PatchEmbedding,
    ViT,
    ViTConfig,
    WindowAttention,
    attention_flops,
    attention_rollout,
    patchify,
    shifted_window_mask,
    window_dense_mask,
    window_partition,
    window_reverse,
)


def test_patch_embedding_matmul_equals_strided_conv():
    torch.manual_seed(0)
    embed = PatchEmbedding(3, 16, 4).double()
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    assert torch.allclose(embed(x), embed.forward_matmul(x), atol=1e-12)
    assert embed(x).shape == (2, 6, 16)


def test_patchify_puts_each_patch_in_a_row():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (1, 4, 4)
    assert p[0, 1].tolist() == [2.0, 3.0, 6.0, 7.0]  # the top-right patch, row by row


def _hf_vit(config: ViTConfig):
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.ViTConfig(
        image_size=config.image_size, patch_size=config.patch_size,
        num_channels=config.in_channels, hidden_size=config.d_model,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff, hidden_act="gelu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=config.layer_norm_eps,
        num_labels=config.n_classes, qkv_bias=True,
        attn_implementation="eager")  # eager attention returns its weights
    torch.manual_seed(1)
    model = transformers.ViTForImageClassification(hf_config).double().eval()
    with torch.no_grad():  # non-trivial norms, class token and biases
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _copy_from_hf(ours: ViT, hf) -> None:
    """Copy transformers' ViTForImageClassification weights into our ViT."""
    vit = hf.vit
    pairs = [(ours.patch_embed.proj, vit.embeddings.patch_embeddings.projection),
             (ours.ln, vit.layernorm), (ours.head, hf.classifier)]
    for block, layer in zip(ours.blocks, vit.layers):  # transformers 5's names
        attn = layer.attention
        pairs += [(block.ln_self, layer.layernorm_before),
                  (block.self_attn.q_proj, attn.q_proj), (block.self_attn.k_proj, attn.k_proj),
                  (block.self_attn.v_proj, attn.v_proj), (block.self_attn.out_proj, attn.o_proj),
                  (block.ln_ff, layer.layernorm_after),
                  (block.ff.fc, layer.mlp.fc1), (block.ff.proj, layer.mlp.fc2)]
    with torch.no_grad():
        for mine, theirs in pairs:
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
        ours.cls_token.copy_(vit.embeddings.cls_token)
        ours.pos_embed.copy_(vit.embeddings.position_embeddings)


@pytest.mark.parametrize("eps", [1e-6, 1e-12])
def test_vit_matches_transformers_vit(eps):
    config = ViTConfig(image_size=8, patch_size=2, d_model=16, n_heads=4, n_layers=2,
                       d_ff=24, layer_norm_eps=eps)
    hf = _hf_vit(config)
    ours = ViT(config).double().eval()
    _copy_from_hf(ours, hf)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    out = hf(pixel_values=x, output_attentions=True)
    # transformers' eager attention takes its softmax in float32: agreement to ~1e-7
    assert torch.allclose(ours(x), out.logits, atol=1e-6)
    tokens, maps = ours.tokens(x, need_weights=True)
    assert torch.allclose(tokens, hf.vit(pixel_values=x).last_hidden_state, atol=1e-6)
    assert len(maps) == len(out.attentions) == config.n_layers
    for mine, theirs in zip(maps, out.attentions):
        assert torch.allclose(mine, theirs.double(), atol=1e-6)


def test_vit_default_epsilon_differs_from_chapter_6_blocks():
    # the ViT sets its own epsilon; PyTorch's LayerNorm default (chapter 6) is 1e-5
    model = ViT(ViTConfig(layer_norm_eps=1e-6))
    eps = {m.eps for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {1e-6}


def test_vit_overfits_one_batch():
    torch.manual_seed(0)
    model = ViT(ViTConfig(d_model=16, n_heads=2, n_layers=1, d_ff=32))
    x, y = torch.rand(16, 1, 8, 8), torch.arange(16) % 10
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_attention_rollout_rows_sum_to_one_and_single_layer_case():
    torch.manual_seed(0)
    maps = [torch.softmax(torch.randn(2, 3, 5, 5), -1) for _ in range(3)]
    r = attention_rollout(maps)
    assert torch.allclose(r.sum(-1), torch.ones(2, 5), atol=1e-6)
    one = attention_rollout(maps[:1], residual=False)
    assert torch.allclose(one, maps[0].mean(1))
    two = attention_rollout(maps[:2], residual=False)
    assert torch.allclose(two, maps[1].mean(1) @ maps[0].mean(1), atol=1e-6)


def test_window_partition_round_trip():
    x = torch.randn(2, 8, 12, 3)
    w = window_partition(x, 4)
    assert w.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(window_reverse(w, 4, 8, 12), x)
    assert torch.equal(w[1], x[0, :4, 4:8].reshape(16, 3))  # second window: top row, 2nd column


@pytest.mark.parametrize("shift", [0, 1, 2])
def test_window_attention_equals_dense_attention_with_block_mask(shift):
    torch.manual_seed(0)
    H, W, C, M = 8, 8, 8, 4
    layer = WindowAttention(C, 2, M, shift).double()
    x = torch.randn(2, H, W, C, dtype=torch.float64)
    mask = window_dense_mask(H, W, M, shift)
    flat = x.view(2, H * W, C)
    dense, _ = layer.attn(flat, flat, flat, mask)
    assert torch.allclose(layer(x).view(2, H * W, C), dense, atol=1e-12)


def test_shifted_window_mask_counts():
    mask = shifted_window_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert mask[0].all()  # the top-left window holds one region
    # the bottom-right window mixes four regions of 4 tokens each: 4 * 16 allowed pairs
    assert mask[3].sum() == 4 * 4 * 4
    assert shifted_window_mask(8, 8, 4, 0).all()
    dense = window_dense_mask(8, 8, 4, 0)
    assert dense.sum() == 64 * 16  # every token sees its 16 window mates


def test_attention_flops_window_is_linear_in_tokens():
    assert attention_flops(16, 16, 8) - attention_flops(16, 16, 8, window=16) == 0
    g1, g2 = attention_flops(8, 8, 8, 4), attention_flops(16, 16, 8, 4)
    assert g2 == 4 * g1


@pytest.mark.parametrize("call, error", [
    (lambda: patchify(torch.zeros(1, 1, 7, 8), 2), ValueError),
    (lambda: patchify("image", 2), TypeError),
    (lambda: ViTConfig(image_size=8, patch_size=3), ValueError),
    (lambda: ViTConfig(d_model=30, n_heads=4), ValueError),
    (lambda: ViT("config"), TypeError),
    (lambda: ViT()(torch.zeros(1, 1, 6, 6)), ValueError),
    (lambda: attention_rollout([]), ValueError),
    (lambda: shifted_window_mask(8, 8, 4, 4), ValueError),
    (lambda: window_partition(torch.zeros(1, 6, 8, 2), 4), ValueError),
    (lambda: WindowAttention(8, 2, 4, shift=5), ValueError),
])
def test_bad_inputs(call, error):
    with pytest.raises(error):
        call()


def test_class_balanced_subset_takes_each_class_equally():
    from dlbook.data import load_digits
    from dlbook.vit import class_balanced_subset

    train = load_digits(as_images=True).train
    subset = class_balanced_subset(train, 100, seed=3)
    assert torch.bincount(subset.tensors[1], minlength=10).tolist() == [10] * 10
    assert class_balanced_subset(train, len(train), seed=3) is train


def test_near_far_similarity_of_a_grid_shaped_embedding():
    from dlbook.vit import near_far_similarity

    rows, cols = torch.arange(16) // 4, torch.arange(16) % 4
    dist = (rows[:, None] - rows[None, :]).abs() + (cols[:, None] - cols[None, :]).abs()
    near, far = near_far_similarity(1.0 - dist / 6.0)
    assert near == pytest.approx(1 - 1 / 6) and far < near
    with pytest.raises(ValueError):
        near_far_similarity(torch.zeros(15, 15))


def test_shipped_vit_checkpoint_matches_its_record():
    from dlbook.checkpoint import load_checkpoint, shipped_checkpoint
    from dlbook.data import load_digits
    from dlbook.vit import near_far_similarity, position_similarity

    ck = load_checkpoint(shipped_checkpoint("vit_digits.pt"), kind="vit_digits")
    model = ViT(ViTConfig(**ck.config["vit"]))
    model.load_state_dict(ck.state_dict)
    x, y = load_digits(as_images=True).test.tensors
    with torch.no_grad():
        acc = (model.eval()(x).argmax(1) == y).float().mean().item()
    assert acc == pytest.approx(ck.extra["metrics"]["accuracy"], abs=1e-6)
    near, far = near_far_similarity(position_similarity(model))
    assert near == pytest.approx(ck.extra["metrics"]["near"], abs=1e-5)
    assert near - far > 0.25  # the chapter's claim: shifts teach the grid


def test_shipped_grid_reproduces_one_cell():
    from dlbook.checkpoint import load_checkpoint, shipped_checkpoint
    from dlbook.data import load_digits
    from dlbook.vit import bias_run

    ck = load_checkpoint(shipped_checkpoint("vit_vs_cnn.pt"), kind="vit_vs_cnn")
    assert ck.config["run"]["steps"] == BiasRunConfig().steps
    # the cheapest cell: the ResNet on 100 digits without shifts, seed 0
    _, acc = bias_run(BiasRunConfig(model="resnet", n_train=100, seed=0),
                      load_digits(as_images=True))
    assert acc == pytest.approx(ck.state_dict["accuracy"][1, 0, 0, 0].item(), abs=0.02)


def test_train_vit_script_round_trip(tmp_path, capsys):
    from dlbook.checkpoint import load_checkpoint
    from dlbook.cli import load_script

    module = load_script("train_vit")
    out = tmp_path / "vit.pt"
    module.main(["--out", str(out), "--steps", "3"])
    assert "wrote" in capsys.readouterr().out
    ck = load_checkpoint(out, kind="vit_digits")
    assert ck.config["steps"] == 3 and set(ck.extra["metrics"]) == {"accuracy", "near", "far"}
    with pytest.raises(SystemExit):
        module.main(["--out", str(out), "--steps", "3"])  # no silent overwrite


@pytest.mark.parametrize("call, error", [
    (lambda: BiasRunConfig(model="mlp"), ValueError),
    (lambda: BiasRunConfig(n_train=0), ValueError),
])
def test_bias_config_bad_inputs(call, error):
    with pytest.raises(error):
        call()
