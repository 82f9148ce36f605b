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
