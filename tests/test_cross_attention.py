"""Tests of dlbook.cross_attention: the cross-attention block against
torch.nn.MultiheadAttention with copied weights, the prompt denoiser with the
diffusion module's loss and samplers, and the grid data."""

import pytest
import torch
from torch import nn

from dlbook.cross_attention import (
    CrossAttention,
    PromptDenoiser,
    PromptDenoiserConfig,
    grid_centres,
    grid_mixture,
    grid_prompts,
    nearest_cell,
)
from dlbook.diffusion import (
    DiffusionConfig,
    NoiseSchedule,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
)


def _block_and_reference(d_model, n_heads, seed):
    """Our block and torch's attention with the same weights, and the block's norm."""
    torch.manual_seed(seed)
    block = CrossAttention(d_model, n_heads).double()
    with torch.no_grad():  # a norm that is not the identity
        block.norm.weight.normal_()
        block.norm.bias.normal_()
    mha = nn.MultiheadAttention(d_model, n_heads, batch_first=True).double()
    a = block.attn
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight])
        )
        mha.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        mha.out_proj.weight.copy_(a.out_proj.weight)
        mha.out_proj.bias.copy_(a.out_proj.bias)
    return block, mha


@pytest.mark.parametrize(
    "n_heads,T_q,L,seed", [(1, 1, 3, 0), (2, 1, 2, 1), (4, 5, 7, 2)]
)
def test_cross_attention_matches_torch(n_heads, T_q, L, seed):
    block, mha = _block_and_reference(16, n_heads, seed)
    h = torch.randn(3, T_q, 16, dtype=torch.float64)
    context = torch.randn(3, L, 16, dtype=torch.float64)
    out, weights = block(h, context, need_weights=True)
    ref, ref_weights = mha(block.norm(h), context, context, average_attn_weights=False)
    torch.testing.assert_close(out, h + ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(weights, ref_weights, rtol=1e-10, atol=1e-10)
    # the fused path gives the same output
    torch.testing.assert_close(block(h, context)[0], out, rtol=1e-10, atol=1e-10)
    # gradients flow to the prompt as they do in torch
    context.requires_grad_(True)
    g = torch.autograd.grad(block(h, context)[0].sum(), context)[0]
    g_ref = torch.autograd.grad(mha(block.norm(h), context, context)[0].sum(), context)[
        0
    ]
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_cross_attention_padding_mask_matches_torch():
    block, mha = _block_and_reference(8, 2, 3)
    h = torch.randn(2, 1, 8, dtype=torch.float64)
    context = torch.randn(2, 4, 8, dtype=torch.float64)
    pad = torch.tensor([[False, False, True, True], [False, False, False, True]])
    out, weights = block(h, context, mask=~pad[:, None, None, :], need_weights=True)
    ref, _ = mha(block.norm(h), context, context, key_padding_mask=pad)
    torch.testing.assert_close(out, h + ref, rtol=1e-10, atol=1e-10)
    assert bool((weights[..., pad[:, None, None, :].expand_as(weights)] == 0).all())


def test_one_token_prompt_is_a_label_embedding():
    """With one token the weight is 1 whatever the query: the block adds a vector that
    depends on the token only, as the U-Net's label embedding does."""
    block, _ = _block_and_reference(8, 2, 4)
    token = torch.randn(1, 1, 8, dtype=torch.float64)
    h = torch.randn(5, 1, 8, dtype=torch.float64)
    out, weights = block(h, token.expand(5, 1, 8), need_weights=True)
    added = out - h  # (5, 1, 8)
    torch.testing.assert_close(added, added[:1].expand_as(added))
    assert torch.allclose(weights, torch.ones_like(weights))


def test_prompt_denoiser_with_the_diffusion_loss_and_samplers():
    torch.manual_seed(0)
    model = PromptDenoiser(PromptDenoiserConfig(hidden=16, n_blocks=2))
    schedule = NoiseSchedule.from_config(DiffusionConfig(n_steps=50))
    x0, prompts = grid_mixture([(0, 0), (2, 1)], 4, torch.Generator().manual_seed(0))
    loss = diffusion_loss(model, x0, schedule, prompts, p_uncond=0.5)
    loss.backward()
    assert loss.item() > 0 and model.embed_tokens.weight.grad is not None
    y = grid_prompts(torch.tensor([0, 1, 2]), torch.tensor([2, 1, 0]))
    x = ddim_sample(model, (3, 2), schedule, 5, y=y, guidance=3.0)
    assert x.shape == (3, 2) and torch.isfinite(x).all()
    assert ddpm_sample(model, (3, 2), schedule).shape == (3, 2)  # the empty prompt
    eps, weights = model.with_weights(x, torch.tensor([0, 5, 49]), y)
    assert len(weights) == 2 and weights[0].shape == (3, 2, 2)
    torch.testing.assert_close(weights[1].sum(-1), torch.ones(3, 2))
    torch.testing.assert_close(eps, model(x, torch.tensor([0, 5, 49]), y))


def test_label_dropout_replaces_whole_prompts():
    class Recorder(nn.Module):
        config = PromptDenoiserConfig()

        def forward(self, x, t, y):
            self.y = y
            return torch.zeros_like(x)

    model = Recorder()
    y = torch.zeros(500, 2, dtype=torch.int64)
    diffusion_loss(
        model,
        torch.zeros(500, 2),
        NoiseSchedule.from_config(DiffusionConfig(n_steps=50)),
        y,
        p_uncond=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    null = model.y == model.config.n_classes
    assert bool((null[:, 0] == null[:, 1]).all()) and 150 < int(null[:, 0].sum()) < 350


def test_grid_helpers_and_errors():
    y = grid_prompts(torch.arange(3).repeat(3), torch.arange(3).repeat_interleave(3))
    assert torch.equal(nearest_cell(grid_centres(y)), y)
    assert torch.equal(grid_centres(y)[0], torch.tensor([-2.0, -2.0]))
    x, p = grid_mixture([(1, 1)], 1000, torch.Generator().manual_seed(1), std=0.3)
    assert abs(x.std().item() - 0.3) < 0.03 and (p == torch.tensor([1, 4])).all()
    with pytest.raises(ValueError, match="column must be an int64"):
        grid_prompts(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="hidden divisible by n_heads"):
        PromptDenoiserConfig(hidden=10, n_heads=4)
    with pytest.raises(
        ValueError, match=r"y must be an int64 tensor of prompts \(2, L\)"
    ):
        PromptDenoiser()(
            torch.zeros(2, 2),
            torch.zeros(2, dtype=torch.int64),
            torch.zeros(2, dtype=torch.int64),
        )
    with pytest.raises(TypeError, match="PromptDenoiserConfig"):
        PromptDenoiser(config=3)


def test_train_denoiser_takes_prompts():
    from dlbook.diffusion import DenoiserTrainConfig, train_denoiser
    from dlbook.train import TrainConfig

    torch.manual_seed(0)
    model = PromptDenoiser(PromptDenoiserConfig(hidden=16, n_blocks=1))
    x0, prompts = grid_mixture([(0, 0), (2, 2)], 32, torch.Generator().manual_seed(0))
    config = DenoiserTrainConfig(
        training=TrainConfig(steps=5, batch_size=16, progress=False)
    )
    schedule = NoiseSchedule.from_config(DiffusionConfig(n_steps=50))
    history = train_denoiser(model, x0, schedule, config, y=prompts)
    assert len(history.step_loss) == 5
    with pytest.raises(ValueError, match=r"\(64,\) \(labels\) or \(64, L\)"):
        train_denoiser(model, x0, schedule, config, y=prompts[:10])
