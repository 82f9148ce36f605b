"""dlbook.zero: ZeRO stage 1 on two gloo processes reaches the same parameters as plain DDP
with AdamW, and each process keeps about half of Adam's state."""

import pytest
import torch

from dlbook.ddp import run_on_gloo
from dlbook.gpt import GPTConfig
from dlbook.zero import random_windows, sharded_run


def test_zero_matches_ddp_and_halves_the_optimizer_state():
    config = GPTConfig(vocab_size=40, block_size=8, n_layers=2, n_heads=2, d_model=16,
                       dropout=0.0)
    result = sharded_run(config, nproc=2, steps=3, batch=4)
    for a, b in zip(result["params"]["DDP"], result["params"]["ZeRO-1"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    full = result["bytes"][0]["DDP"]["optimizer state"]
    shards = [per_rank["ZeRO-1"]["optimizer state"] for per_rank in result["bytes"]]
    assert sum(shards) == full  # the shards partition the state
    assert max(shards) < 0.75 * full
    for per_rank in result["bytes"]:
        assert per_rank["ZeRO-1"]["weights"] == per_rank["DDP"]["weights"]


def test_batch_must_split_evenly():
    with pytest.raises(ValueError, match="divisible"):
        sharded_run(GPTConfig(vocab_size=10, block_size=4, n_layers=1, n_heads=1, d_model=4),
                    nproc=2, batch=3)


def test_random_windows_and_run_on_gloo_reject_bad_counts():
    config = GPTConfig(vocab_size=11, block_size=4, n_layers=1, n_heads=1, d_model=8)
    windows = random_windows(config, 2, 3)
    assert len(windows) == 2 and windows[0].shape == (3, 5)
    assert all(torch.equal(a, b) for a, b in zip(windows, random_windows(config, 2, 3)))
    with pytest.raises(ValueError, match="steps"):
        random_windows(config, 0, 3)
    with pytest.raises(ValueError, match="batch"):
        random_windows(config, 2, -1)
    with pytest.raises(ValueError, match="nproc"):
        run_on_gloo(print, 0, ())
