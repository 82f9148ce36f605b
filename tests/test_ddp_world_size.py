"""A checkpoint written by W processes resumes only on W processes: the data shards, the
per-process random generators and the effective batch all depend on W, so ddp.train refuses
rather than continue a different run (chapter 9 states this)."""

import dataclasses

import pytest

from dlbook import ddp


def test_resume_on_another_world_size_is_refused(tmp_path):
    task = ddp.ToyTask(n_samples=256)
    config = ddp.RunConfig(steps=6, micro_batch=8, optimizer="sgd", base_lr=0.05, base_batch=16,
                           checkpoint=str(tmp_path / "c.pt"), stop_after=3)
    ddp.launch(task, config, nproc=2, timeout_s=120.0)
    resume = dataclasses.replace(config, resume=True, stop_after=None)
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 1"):
        ddp.train(task, resume)  # one process
    # the same effective batch (16 examples a step) and learning rate on one process: still refused
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 1"):
        ddp.train(task, dataclasses.replace(resume, micro_batch=16))
    # on two processes it resumes
    assert ddp.launch(task, resume, nproc=2, timeout_s=120.0).start_step == 3


def test_resume_if_exists_starts_first_and_resumes_after(tmp_path):
    """What a torchrun restart needs: the same command starts a run when there is no
    checkpoint yet and resumes once there is one."""
    checkpoint = tmp_path / "run.ckpt"
    assert not ddp.resume_wanted(str(checkpoint), resume=False, if_exists=True)
    checkpoint.write_bytes(b"saved")
    assert ddp.resume_wanted(str(checkpoint), resume=False, if_exists=True)
    assert ddp.resume_wanted(str(tmp_path / "missing"), resume=True, if_exists=False)
    assert not ddp.resume_wanted(None, resume=False, if_exists=False)
    with pytest.raises(ValueError, match="needs --checkpoint"):
        ddp.resume_wanted(None, resume=False, if_exists=True)
    with pytest.raises(ValueError, match="not both"):
        ddp.resume_wanted(str(checkpoint), resume=True, if_exists=True)
