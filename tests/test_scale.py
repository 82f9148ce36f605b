"""Tests for dlbook.scale: arithmetic, schedules, accumulation, precision, checkpoints."""

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook import checkpoint, scale

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _data(n, dtype=torch.float32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def test_training_flops_is_six_n_d():
    # GPT-3: 175e9 parameters, 300e9 tokens, reported 3.14e23 FLOPs (Brown et al., 2020).
    assert scale.training_flops(175e9, 300e9) == pytest.approx(3.15e23)
    assert scale.training_flops(2, 3) == 36.0
    with pytest.raises(ValueError, match="n_tokens must be a positive number"):
        scale.training_flops(10, 0)
    with pytest.raises(ValueError, match="n_params"):
        scale.training_flops("7B", 10)


def test_memory_per_parameter():
    assert sum(scale.memory_per_parameter("adam").values()) == 16
    mixed = scale.memory_per_parameter("adam", mixed_precision=True)
    assert mixed["weights"] == 2 and mixed["master weights"] == 4 and sum(mixed.values()) == 16
    assert sum(scale.memory_per_parameter("sgd").values()) == 8
    assert sum(scale.memory_per_parameter("momentum").values()) == 12
    with pytest.raises(ValueError, match="optimizer must be one of"):
        scale.memory_per_parameter("lion")


def test_scaled_lr_linear_rule():
    # Goyal et al. (2017): 0.1 at batch 256 becomes 3.2 at batch 8,192.
    assert scale.scaled_lr(0.1, 8192) == pytest.approx(3.2)
    assert scale.scaled_lr(1e-3, 64, base_batch_size=32) == pytest.approx(2e-3)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        scale.scaled_lr(0.1, 0)
    with pytest.raises(ValueError, match="base_lr must be positive"):
        scale.scaled_lr(-0.1, 8)


def test_warmup_cosine_shape():
    values = [scale.warmup_cosine(s, 4, 20, min_ratio=0.1) for s in range(21)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[20] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))  # decays monotonically
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        scale.warmup_cosine(0, 30, 20)
    with pytest.raises(ValueError, match="min_ratio"):
        scale.warmup_cosine(0, 2, 20, min_ratio=2.0)


def test_make_scheduler_follows_warmup_cosine():
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = scale.make_scheduler(optimizer, 3, 10)
    for step in range(10):
        expected = 0.5 * scale.warmup_cosine(step, 3, 10)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
        optimizer.step()
        scheduler.step()


def test_amp_dtype_and_autocast_on_cpu():
    cpu = torch.device("cpu")
    assert scale.amp_dtype(cpu) == torch.bfloat16
    assert scale.amp_dtype(cpu, "fp32") is None
    assert scale.amp_dtype(cpu, "fp16") == torch.float16
    with pytest.raises(ValueError, match="precision must be 'auto' or one of"):
        scale.amp_dtype(cpu, "fp8")
    layer = nn.Linear(4, 4)
    with scale.autocast(cpu, torch.bfloat16):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with scale.autocast(cpu, None):
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    assert not scale.make_grad_scaler(cpu, torch.bfloat16).is_enabled()


@settings(max_examples=25, deadline=None)
@given(k=st.sampled_from([1, 2, 3, 4]), size=st.integers(1, 6),
       opt=st.sampled_from(["sgd", "adamw"]), clip=st.sampled_from([None, 0.1]))
def test_accumulation_equals_one_big_batch(k, size, opt, clip):
    """k micro-batches of `size` examples give the step of one batch of k * size (float64)."""
    x, y = _data(k * size, torch.float64)
    models = [_mlp(torch.float64), _mlp(torch.float64)]
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
            "adamw": lambda p: torch.optim.AdamW(p, lr=0.01)}[opt]
    optimizers = [make(m.parameters()) for m in models]
    for _ in range(2):
        micro = [(x[i * size:(i + 1) * size], y[i * size:(i + 1) * size]) for i in range(k)]
        small = scale.accumulation_step(models[0], optimizers[0], micro, _loss, grad_clip=clip)
        big = scale.accumulation_step(models[1], optimizers[1], [(x, y)], _loss, grad_clip=clip)
        torch.testing.assert_close(small, big.to(small.dtype), rtol=0, atol=1e-12)
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert a.grad is None  # gradients are cleared after the step


def test_accumulation_step_rejects_no_batches():
    model = _mlp()
    with pytest.raises(ValueError, match="at least one batch"):
        scale.accumulation_step(model, torch.optim.SGD(model.parameters(), lr=0.1), [], _loss)


def test_bfloat16_step_is_close_to_float32_and_saves_half_the_activations():
    x, y = _data(64)
    losses, grads = [], []
    for dtype in (None, torch.bfloat16):
        model = _mlp()
        with scale.autocast(torch.device("cpu"), dtype):
            loss = _loss(model, (x, y))
        loss.backward()
        losses.append(loss.float())
        grads.append(model[0].weight.grad)
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-2, atol=0)
    torch.testing.assert_close(grads[1], grads[0], rtol=0.1, atol=1e-2)
    wide = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256))
    batch = (torch.randn(128, 64), None)

    def activation_loss(model, batch):
        return model(batch[0]).square().mean()

    full = scale.saved_activation_bytes(wide, batch, activation_loss)
    half = scale.saved_activation_bytes(wide, batch, activation_loss, torch.bfloat16)
    assert full > 128 * 256 * 4  # at least the hidden activations in float32
    assert half < 0.6 * full, (half, full)


def test_rng_state_round_trip():
    state = scale.capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    scale.restore_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3), np.random.randn())
    assert first[0] == second[0] and first[1] == second[1] and first[3] == second[3]
    assert torch.equal(first[2], second[2])
    with pytest.raises(ValueError, match="RNG state lacks"):
        scale.restore_rng_state({"python": state["python"]})


def test_fingerprint_depends_on_shapes_and_config():
    a, b = _mlp(), _mlp(seed=5)
    assert scale.fingerprint(a, {"lr": 1}) == scale.fingerprint(b, {"lr": 1})  # values ignored
    assert scale.fingerprint(a, {"lr": 1}) != scale.fingerprint(a, {"lr": 2})
    wider = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    assert scale.fingerprint(a) != scale.fingerprint(wider)


def _state(model, optimizer):
    return scale.training_state(model, optimizer, step=3, data_position={"epoch": 1, "batch": 2})


def test_checkpoint_round_trip_restores_everything(tmp_path):
    model = _mlp()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = scale.make_scheduler(optimizer, 2, 10)
    scale.accumulation_step(model, optimizer, [_data(8)], _loss)
    scheduler.step()
    path = tmp_path / "ckpt.pt"
    fp = scale.fingerprint(model, {"run": 1})
    state = scale.training_state(model, optimizer, step=1, data_position={"epoch": 0, "batch": 1},
                                 scheduler=scheduler)
    scale.save_checkpoint(path, state, fingerprint=fp)
    expected = torch.rand(4)  # the draw that follows the saved RNG state
    clone = _mlp(seed=9)
    opt2 = torch.optim.AdamW(clone.parameters(), lr=0.01)
    sched2 = scale.make_scheduler(opt2, 2, 10)
    loaded = scale.load_checkpoint(path, fingerprint=fp)
    step, position = scale.restore_training_state(loaded, clone, opt2, scheduler=sched2)
    assert step == 1 and position == {"epoch": 0, "batch": 1}
    assert torch.equal(torch.rand(4), expected)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)
    assert sched2.get_last_lr() == scheduler.get_last_lr()
    x, y = _data(8, seed=3)
    scale.accumulation_step(model, optimizer, [(x, y)], _loss)
    scale.accumulation_step(clone, opt2, [(x, y)], _loss)
    for a, b in zip(model.parameters(), clone.parameters()):
        assert torch.equal(a, b)  # the optimizer's moments came back too
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


@pytest.fixture
def saved(tmp_path):
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "ckpt.pt"
    fp = scale.fingerprint(model)
    scale.save_checkpoint(path, _state(model, optimizer), fingerprint=fp)
    return path, fp, path.read_bytes()


def test_corrupted_checkpoint_is_refused(saved):
    path, fp, data = saved
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="corrupted: its SHA-256 checksum"):
        scale.load_checkpoint(path, fingerprint=fp)
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        scale.load_checkpoint(path, fingerprint=fp)
    path.write_bytes(b"PK\x03\x04" + data[20:])
    with pytest.raises(ValueError, match="not a dlbook checkpoint"):
        scale.load_checkpoint(path, fingerprint=fp)
    path.write_bytes(checkpoint.MAGIC + b"{not json\n" + data[-50:])
    with pytest.raises(ValueError, match="corrupted header"):
        scale.load_checkpoint(path, fingerprint=fp)
    path.write_bytes(data.replace(b'"version": 2', b'"version": 3', 1))
    with pytest.raises(ValueError, match="format version 3, this code reads 2"):
        scale.load_checkpoint(path, fingerprint=fp)


def test_mismatched_checkpoint_is_refused(saved):
    path, fp, _ = saved
    other = scale.fingerprint(nn.Sequential(nn.Linear(5, 9), nn.Tanh(), nn.Linear(9, 3)))
    with pytest.raises(ValueError, match="saved for another model or config"):
        scale.load_checkpoint(path, fingerprint=other)


def test_failed_save_leaves_the_existing_file_alone(saved):
    path, fp, data = saved
    with pytest.raises(Exception, match="lambda|pickle"):
        scale.save_checkpoint(path, {"bad": lambda: 0}, fingerprint=fp)
    with pytest.raises(TypeError, match="state must be a dict"):
        scale.save_checkpoint(path, [1, 2], fingerprint=fp)
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]


def test_restore_refuses_a_rank_without_rng_state(saved):
    path, fp, _ = saved
    state = scale.load_checkpoint(path, fingerprint=fp)
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    with pytest.raises(ValueError, match="RNG states of 1 process"):
        scale.restore_training_state(state, model, optimizer, rank=1)


def test_warmup_reaches_the_scaled_rate():
    lr = scale.scaled_lr(0.1, 1024)
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = scale.make_scheduler(optimizer, 5, 50, min_ratio=0.0)
    rates = []
    for _ in range(50):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(rates) == pytest.approx(0.4) and rates[0] == pytest.approx(0.08)
    assert math.isclose(rates[4], 0.4)
