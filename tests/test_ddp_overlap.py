"""dlbook.ddp.overlap_schedule: the timing model of DDP's bucketed all-reduce."""

import pytest

from dlbook.ddp import overlap_schedule


def _end(schedule):
    compute, communication = schedule
    return max(end for _, end in compute + communication)


def test_without_overlap_communication_follows_the_whole_backward_pass():
    backward, allreduce = [1.0, 2.0, 1.5], [0.5, 0.25, 1.0]
    compute, communication = overlap_schedule(backward, allreduce, overlap=False)
    assert compute == [(0.0, 1.0), (1.0, 3.0), (3.0, 4.5)]
    assert communication[0][0] == 4.5
    assert _end((compute, communication)) == sum(backward) + sum(allreduce)


def test_with_overlap_only_the_last_buckets_allreduce_is_exposed_when_it_is_fast():
    backward, allreduce = [1.0] * 4, [0.6] * 4
    schedule = overlap_schedule(backward, allreduce, overlap=True)
    assert _end(schedule) == pytest.approx(4.0 + 0.6)


def test_with_overlap_slow_communication_queues_on_one_channel():
    backward, allreduce = [1.0] * 4, [2.0] * 4
    compute, communication = overlap_schedule(backward, allreduce, overlap=True)
    # the channel is the bottleneck: first bucket ready at 1, then 4 all-reduces of 2
    assert _end((compute, communication)) == pytest.approx(1.0 + 4 * 2.0)
    for (_, ready), (start, _) in zip(compute, communication):
        assert start >= ready  # never before the gradients exist
    for (_, first_end), (second_start, _) in zip(communication, communication[1:]):
        assert second_start >= first_end  # one at a time


def test_errors():
    with pytest.raises(ValueError, match="one time per bucket"):
        overlap_schedule([1.0], [1.0, 2.0], overlap=True)
    with pytest.raises(ValueError, match="non-negative"):
        overlap_schedule([1.0], [-1.0], overlap=True)
