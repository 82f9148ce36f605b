"""RMSNorm and SwiGLU against PyTorch and transformers' LLaMA, and the GPT switches using them."""

import dataclasses

import pytest
import torch

from dlbook.gpt import GPT, GPTConfig, count_parameters, gpt_parameter_formula, load_char_lm
from dlbook.modern import RMSNorm, SwiGLU, swiglu_width


def test_rmsnorm_matches_torch_forward_and_backward():
    torch.manual_seed(0)
    ours, ref = RMSNorm(16, eps=1e-6).double(), torch.nn.RMSNorm(16, eps=1e-6).double()
    with torch.no_grad():
        ours.weight.copy_(torch.randn(16))
        ref.weight.copy_(ours.weight)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out, out_ref = ours(x), ref(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (out_ref * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-12)


def test_swiglu_matches_llama_mlp():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaMLP

    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=88, hidden_act="silu")
    ref = LlamaMLP(config).double().eval()
    ours = SwiGLU(32, 88).double().eval()
    with torch.no_grad():
        ours.gate.weight.copy_(ref.gate_proj.weight)
        ours.up.weight.copy_(ref.up_proj.weight)
        ours.proj.weight.copy_(ref.down_proj.weight)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
@pytest.mark.parametrize("mlp", ["gelu", "swiglu"])
@pytest.mark.parametrize("tie", [True, False])
def test_switches_build_and_the_formula_counts_them(norm, mlp, tie):
    config = GPTConfig(vocab_size=50, block_size=16, n_layers=2, n_heads=4, d_model=48,
                       norm=norm, mlp=mlp, tie_weights=tie)
    model = GPT(config)
    assert count_parameters(model) == gpt_parameter_formula(config)
    assert (sum(isinstance(m, RMSNorm) for m in model.modules())
            == (2 * config.n_layers + 1 if norm == "rmsnorm" else 0))
    assert sum(isinstance(m, SwiGLU) for m in model.modules()) == (2 if mlp == "swiglu" else 0)
    idx = torch.randint(0, 50, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 50) and torch.isfinite(logits).all()
    # the key-value cache gives the same tokens as recomputing
    gen = [model.generate(idx[:, :3], 10, generator=torch.Generator().manual_seed(0),
                          use_cache=c) for c in (True, False)]
    assert torch.equal(*gen)


def test_modern_gpt_overfits_one_batch():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layers=2, n_heads=2, d_model=32,
                          dropout=0.0, norm="rmsnorm", mlp="swiglu"))
    x = torch.randint(0, 20, (4, 17))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, loss.item()


def test_swiglu_width_keeps_the_parameter_count():
    for d in (64, 128, 768, 4096):
        h = swiglu_width(d)
        assert h % 8 == 0 and 0 <= h - 8 * d / 3 < 8
        assert abs(3 * d * h / (8 * d * d) - 1) < 0.05  # rounding up to a multiple of 8


def test_bad_switches_and_old_checkpoints():
    with pytest.raises(ValueError, match="norm must be one of"):
        GPTConfig(vocab_size=10, norm="batchnorm")
    with pytest.raises(ValueError, match="mlp must be one of"):
        GPTConfig(vocab_size=10, mlp="relu")
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(8, eps=0.0)
    model, _, _ = load_char_lm()  # saved before the switches existed: GPT-2's defaults
    assert model.config.norm == "layernorm" and model.config.mlp == "gelu"
    assert dataclasses.replace(model.config, norm="rmsnorm").norm == "rmsnorm"
