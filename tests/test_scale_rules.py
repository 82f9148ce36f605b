"""dlbook.scale's ZeRO memory and Chinchilla rules against the numbers their papers print."""

import pytest

from dlbook import scale


def test_zero_stages_match_figure_1_of_the_zero_paper():
    # Rajbhandari et al. (2020), figure 1: 7.5 B parameters, 64 GPUs, K = 12.
    # Per-device memory: 120 GB, 31.4 GB, 16.6 GB and 1.9 GB.
    printed = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, gb in printed.items():
        parts = scale.zero_bytes_per_parameter(stage, 64)
        assert round(7.5e9 * sum(parts.values()) / 1e9, 1) == gb, (stage, parts)


def test_zero_stage_3_divides_everything_and_one_process_changes_nothing():
    full = scale.zero_bytes_per_parameter(0, 8, 4, 4, 8)
    assert full == {"optimizer state": 8, "gradients": 4, "weights": 4}
    assert scale.zero_bytes_per_parameter(3, 8, 4, 4, 8) == {
        k: v / 8 for k, v in full.items()}
    for stage in range(4):
        assert scale.zero_bytes_per_parameter(stage, 1) == scale.zero_bytes_per_parameter(0, 1)
    with pytest.raises(ValueError, match="stage"):
        scale.zero_bytes_per_parameter(4, 8)


def test_compute_optimal_matches_table_3_of_chinchilla():
    # Hoffmann et al. (2022), table 3: parameters, FLOPs, tokens of compute-optimal models.
    rows = [(400e6, 1.92e19, 8.0e9), (1e9, 1.21e20, 20.2e9), (10e9, 1.23e22, 205.1e9),
            (67e9, 5.76e23, 1.5e12), (175e9, 3.85e24, 3.7e12), (280e9, 9.90e24, 5.9e12),
            (1e12, 1.27e26, 21.2e12)]
    for n, flops, tokens in rows:
        got_n, got_d = scale.compute_optimal(flops)
        assert abs(got_n / n - 1) < 0.05, (n, got_n)
        assert abs(got_d / tokens - 1) < 0.1, (tokens, got_d)
        assert abs(scale.training_flops(got_n, got_d) / flops - 1) < 1e-12
    with pytest.raises(ValueError, match="compute"):
        scale.compute_optimal(-1.0)


def test_a_checkpoint_names_the_world_size_it_was_written_by(tmp_path):
    import torch

    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = scale.training_state(model, optimizer, step=1, data_position={"epoch": 0})
    fp = scale.fingerprint(model, {"run": 1})
    path = tmp_path / "c.ckpt"
    scale.save_checkpoint(path, state, fingerprint=fp, world_size=2)
    with pytest.raises(ValueError, match=r"written by 2 process\(es\), this run has 4"):
        scale.load_checkpoint(path, fingerprint=fp, world_size=4)
    assert scale.load_checkpoint(path, fingerprint=fp, world_size=2)["step"] == 1
    assert scale.load_checkpoint(path, fingerprint=fp)["step"] == 1  # not asked: not checked
    with pytest.raises(ValueError, match="another model or config"):
        scale.load_checkpoint(path, fingerprint="0" * 16, world_size=2)
