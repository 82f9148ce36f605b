"""dlbook.fsdp: FSDP2 (fully_shard) on two gloo processes takes the same AdamW steps as one
process on the whole batch, and each process keeps half of the weights, gradients and
Adam's moments."""

import pytest

from dlbook.fsdp import fsdp_run, train_single
from dlbook.gpt import GPTConfig

CONFIG = GPTConfig(vocab_size=40, block_size=8, n_layers=2, n_heads=2, d_model=16,
                   dropout=0.0)


def test_fsdp_matches_one_process_and_halves_the_state():
    result = fsdp_run(CONFIG, nproc=2, steps=3, batch=4)
    assert len(result.sharded_loss) == 3
    for a, b in zip(result.sharded_loss, result.single_loss, strict=True):
        assert abs(a - b) < 1e-5, (result.sharded_loss, result.single_loss)
    assert result.max_param_diff < 1e-5
    for part, full in result.single_bytes.items():
        shards = [per_rank[part] for per_rank in result.sharded_bytes]
        assert sum(shards) == full, (part, shards, full)  # the shards partition it
        assert max(shards) <= 0.51 * full, (part, shards, full)


def test_reference_trains():
    losses, memory, _ = train_single(CONFIG, steps=20, batch=4, lr=1e-2)
    assert losses[-1] < losses[0]
    assert memory["optimizer state"] == 2 * memory["weights"]  # Adam's two moments


def test_batch_must_split_evenly():
    with pytest.raises(ValueError, match="divisible"):
        fsdp_run(CONFIG, nproc=2, batch=3)
