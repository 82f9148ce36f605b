"""Tests for dlbook.ddp: DDP equals one process on the combined batch, exact resume.

The distributed tests spawn 2 gloo processes that meet on 127.0.0.1 only, each with one
thread, and give up after a timeout. Parameters are compared in float32 with atol 1e-6:
the two runs add the same numbers in a different order, so only rounding may differ.
"""

import dataclasses
import time

import pytest
import torch

from dlbook import ddp, scale

ATOL = 1e-6  # float32 rounding of a differently ordered sum, over a few steps
TIMEOUT_S = 120.0
TASK = ddp.ToyTask(n_samples=256)
SGD = ddp.RunConfig(steps=6, micro_batch=8, optimizer="sgd", base_lr=0.05, base_batch=16,
                    warmup=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_same_parameters(a: dict, b: dict, atol: float = ATOL) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol, msg=name)


def test_backend_and_effective_batch():
    assert ddp.backend_for(torch.device("cpu")) == "gloo"
    assert ddp.backend_for(torch.device("cuda", 0)) == "nccl"
    assert ddp.effective_batch(ddp.RunConfig(micro_batch=8, accum=4), world_size=2) == 64


def test_two_processes_equal_one_process_on_the_combined_batch():
    two = ddp.launch(TASK, SGD, nproc=2, timeout_s=TIMEOUT_S)
    one = ddp.train(TASK, dataclasses.replace(SGD, micro_batch=16))
    assert two.world_size == 2 and two.examples == one.examples == 6 * 16
    assert two.lr == one.lr  # the same scaled, warmed-up learning rates
    torch.testing.assert_close(torch.tensor(two.step_loss), torch.tensor(one.step_loss),
                               rtol=0, atol=ATOL)
    assert_same_parameters(two.state_dict, one.state_dict)
    # and the step really moved the parameters, by far more than the tolerance
    start = TASK.build_model().state_dict()
    assert max((start[k] - one.state_dict[k]).abs().max() for k in start) > 100 * ATOL


def test_ddp_with_accumulation_equals_one_big_batch():
    config = dataclasses.replace(SGD, micro_batch=4, accum=2, optimizer="adamw", base_lr=1e-2)
    two = ddp.launch(TASK, config, nproc=2, timeout_s=TIMEOUT_S)
    one = ddp.train(TASK, dataclasses.replace(config, micro_batch=16, accum=1))
    assert_same_parameters(two.state_dict, one.state_dict, atol=1e-5)  # Adam divides by sqrt(v)


def test_accumulation_in_one_process_equals_one_big_batch():
    small = ddp.train(TASK, dataclasses.replace(SGD, micro_batch=4, accum=4))
    big = ddp.train(TASK, dataclasses.replace(SGD, micro_batch=16))
    assert_same_parameters(small.state_dict, big.state_dict)


def _resume_setup(tmp_path):
    task = dataclasses.replace(TASK, dropout=0.3)  # so training consumes random numbers
    config = ddp.RunConfig(steps=14, micro_batch=16, warmup=3, checkpoint=str(tmp_path / "c.pt"))
    return task, config


def _resume_runs(tmp_path, launch):
    """An uninterrupted run, and the same run stopped after step 5 and resumed."""
    task, config = _resume_setup(tmp_path)
    full = launch(task, config)
    first = launch(task, dataclasses.replace(config, stop_after=5))
    rest = launch(task, dataclasses.replace(config, resume=True))
    return full, first, rest


def test_resume_gives_exactly_the_same_losses(tmp_path):
    # 14 steps of 16 examples cross the 256-example epoch boundary after the restart.
    full, first, rest = _resume_runs(tmp_path, ddp.train)
    assert len(first.step_loss) == 5 and rest.start_step == 5 and len(rest.step_loss) == 9
    assert torch.equal(torch.tensor(first.step_loss + rest.step_loss), torch.tensor(full.step_loss))
    assert first.lr + rest.lr == full.lr
    for name in full.state_dict:
        assert torch.equal(rest.state_dict[name], full.state_dict[name]), name


def test_resume_with_two_processes_is_exact(tmp_path):
    def two(task, config):
        return ddp.launch(task, config, nproc=2, timeout_s=TIMEOUT_S)

    full, first, rest = _resume_runs(tmp_path, two)
    assert torch.equal(torch.tensor(first.step_loss + rest.step_loss), torch.tensor(full.step_loss))
    for name in full.state_dict:
        assert torch.equal(rest.state_dict[name], full.state_dict[name]), name


def test_resume_without_the_rng_state_would_differ(tmp_path):
    """The exact-resume test can fail: with fresh random numbers the dropout masks change."""
    full, _, _ = _resume_runs(tmp_path, ddp.train)
    task, config = _resume_setup(tmp_path)
    fingerprint = ddp._fingerprint(task.build_model(), task, config, world_size=1)
    state = scale.load_checkpoint(config.checkpoint, fingerprint=fingerprint)
    torch.manual_seed(123)
    state["rng"] = [scale.capture_rng_state()]
    scale.save_checkpoint(config.checkpoint, state, fingerprint=fingerprint)
    rest = ddp.train(task, dataclasses.replace(config, resume=True))
    assert not torch.equal(torch.tensor(rest.step_loss), torch.tensor(full.step_loss[5:]))


def test_corrupted_or_mismatched_checkpoint_is_refused_and_kept(tmp_path):
    path = tmp_path / "c.pt"
    config = dataclasses.replace(SGD, checkpoint=str(path), stop_after=3)
    ddp.train(TASK, config)
    data = path.read_bytes()
    resume = dataclasses.replace(config, resume=True, stop_after=None)
    wider = dataclasses.replace(TASK, hidden=64)
    with pytest.raises(ValueError, match="saved for another model or config"):
        ddp.train(wider, resume)
    with pytest.raises(ValueError, match="saved for another model or config"):
        ddp.train(TASK, dataclasses.replace(resume, micro_batch=4))
    corrupted = bytearray(data)
    corrupted[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(corrupted))
    with pytest.raises(ValueError, match="corrupted"):
        ddp.train(TASK, resume)
    assert path.read_bytes() == bytes(corrupted)  # refused, and nothing was written over it
    path.write_bytes(data)
    assert len(ddp.train(TASK, resume).step_loss) == SGD.steps - 3


def test_worker_errors_reach_the_caller():
    tiny = dataclasses.replace(TASK, n_samples=8)  # fewer examples than 2 micro-batches of 8
    with pytest.raises(Exception, match="smaller than one micro-batch per process"):
        ddp.launch(tiny, SGD, nproc=2, timeout_s=TIMEOUT_S)
    with pytest.raises(ValueError, match="nproc must be a positive int"):
        ddp.launch(TASK, SGD, nproc=0)


def test_a_run_that_takes_too_long_is_stopped():
    endless = dataclasses.replace(SGD, steps=10**6)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within 1.0 s"):
        ddp.launch(TASK, endless, nproc=2, timeout_s=1.0)
    assert time.monotonic() - start < 30


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adamw', got 'lamb'"):
        dataclasses.replace(SGD, optimizer="lamb")
    with pytest.raises(ValueError, match="micro_batch must be a positive int"):
        ddp.RunConfig(micro_batch=0)
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        ddp.RunConfig(steps=5, warmup=10)
    with pytest.raises(ValueError, match="precision must be"):
        ddp.RunConfig(precision="fp8")
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        ddp.RunConfig(resume=True)
    with pytest.raises(ValueError, match="needs an initialised process group"):
        ddp.train(TASK, SGD, rank=0, world_size=2)
    with pytest.raises(ValueError, match="device_type must be"):
        ddp.rank_device(0, "tpu")


def test_command_line_runs_two_processes(capsys):
    result = ddp.main(["--nproc", "2", "--task", "toy", "--steps", "3", "--micro-batch", "4"])
    assert result.world_size == 2 and len(result.step_loss) == 3
    assert "world size 2: steps 0-3" in capsys.readouterr().out


def test_token_windows():
    windows = ddp.TokenWindows(torch.arange(20), block_size=4, stride=4)
    assert len(windows) == 4
    x, y = windows[3]
    assert x.tolist() == [12, 13, 14, 15] and y.tolist() == [13, 14, 15, 16]
    with pytest.raises(ValueError, match="longer than block_size=4"):
        ddp.TokenWindows(torch.arange(4), block_size=4, stride=1)


def test_mixed_precision_runs_and_resumes_exactly(tmp_path):
    task = dataclasses.replace(TASK, dropout=0.2)
    fp32 = ddp.train(task, ddp.RunConfig(steps=6, micro_batch=16))
    bf16 = ddp.train(task, ddp.RunConfig(steps=6, micro_batch=16, precision="bf16"))
    torch.testing.assert_close(torch.tensor(bf16.step_loss[0]), torch.tensor(fp32.step_loss[0]),
                               rtol=0.02, atol=0)
    # float16 uses a loss scaler, whose state the checkpoint must carry too
    config = ddp.RunConfig(steps=8, micro_batch=16, precision="fp16",
                           checkpoint=str(tmp_path / "c.pt"))
    full = ddp.train(task, config)
    first = ddp.train(task, dataclasses.replace(config, stop_after=3))
    rest = ddp.train(task, dataclasses.replace(config, resume=True))
    assert torch.equal(torch.tensor(first.step_loss + rest.step_loss), torch.tensor(full.step_loss))
