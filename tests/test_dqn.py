"""Tests of dlbook.dqn: the Huber loss against PyTorch's, the replay buffer, TD targets, and a
DQN step."""

import copy

import pytest
import torch
import torch.nn.functional as F

from dlbook.dqn import (
    DQNConfig,
    QNetwork,
    ReplayBuffer,
    dqn_step,
    huber_loss,
    linear_epsilon,
    td_targets,
    train_dqn,
)


@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber_loss_equals_torch_values_and_gradients(delta):
    g = torch.Generator().manual_seed(0)
    pred = (3 * torch.randn(64, generator=g, dtype=torch.float64)).requires_grad_()
    target = torch.randn(64, generator=g, dtype=torch.float64)
    ours = huber_loss(pred, target, delta)
    (ours_grad,) = torch.autograd.grad(ours, pred)
    theirs = F.huber_loss(pred, target, delta=delta)
    (theirs_grad,) = torch.autograd.grad(theirs, pred)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(ours_grad, theirs_grad)
    if delta == 1.0:  # smooth L1 with beta = 1 is the same function
        torch.testing.assert_close(ours, F.smooth_l1_loss(pred, target, beta=1.0))
    assert ours_grad.abs().max() <= delta / 64 + 1e-12  # each error's gradient is capped


def test_linear_epsilon_falls_then_stays():
    assert linear_epsilon(0, 1.0, 0.05, 100) == 1.0
    assert linear_epsilon(50, 1.0, 0.05, 100) == pytest.approx(0.525)
    assert linear_epsilon(100, 1.0, 0.05, 100) == pytest.approx(0.05)
    assert linear_epsilon(10**6, 1.0, 0.05, 100) == linear_epsilon(100, 1.0, 0.05, 100)


def test_replay_buffer_overwrites_the_oldest_and_samples_what_it_holds():
    buffer = ReplayBuffer(capacity=3, obs_dim=2)
    for i in range(5):
        buffer.add([i, i], i % 2, float(i), [i + 1, i + 1], i == 4)
    assert len(buffer) == 3
    assert sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0]  # 0 and 1 were overwritten
    obs, actions, rewards, next_obs, terminated = buffer.sample(50, torch.Generator())
    assert obs.shape == (50, 2) and set(rewards.tolist()) <= {2.0, 3.0, 4.0}
    torch.testing.assert_close(next_obs, obs + 1)  # each transition stays together
    torch.testing.assert_close(terminated, (rewards == 4.0).float())
    torch.testing.assert_close(actions.float(), rewards % 2)


def test_td_targets_bootstrap_only_from_states_that_did_not_terminate():
    net = QNetwork(4, 2, hidden=8)
    next_obs = torch.randn(5, 4)
    rewards = torch.arange(5.0)
    terminated = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    y = td_targets(net, rewards, next_obs, terminated, 0.9)
    with torch.no_grad():
        best = net(next_obs).max(1).values
    for i in range(5):
        expected = rewards[i] + (0.0 if terminated[i] else 0.9 * best[i])
        assert y[i].item() == pytest.approx(float(expected), abs=1e-6)
    assert not y.requires_grad


def test_dqn_steps_fit_a_fixed_batch_and_leave_the_target_alone():
    torch.manual_seed(0)
    q_net = QNetwork(4, 2, hidden=32)
    target = copy.deepcopy(q_net).requires_grad_(False)
    before = copy.deepcopy(target.state_dict())
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(32, 4, generator=g), torch.randint(2, (32,), generator=g),
             torch.randn(32, generator=g), torch.randn(32, 4, generator=g), torch.zeros(32))
    optimizer = torch.optim.Adam(q_net.parameters(), lr=1e-2)
    losses = [dqn_step(q_net, target, optimizer, batch, DQNConfig()) for _ in range(200)]
    assert losses[-1] < 0.05 * losses[0]
    for name, tensor in target.state_dict().items():
        assert torch.equal(tensor, before[name])


def test_a_short_dqn_run_records_its_episodes():
    config = DQNConfig(total_steps=400, learning_starts=100, train_every=50, gradient_steps=2,
                       target_every=100, hidden=16)
    q_net, curve = train_dqn(config)
    assert isinstance(q_net, QNetwork) and not q_net.training
    assert curve and all(1 <= ret <= 500 for _, ret in curve) and curve[-1][0] <= 400


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same shape"):
        huber_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="delta must be > 0"):
        huber_loss(torch.zeros(3), torch.zeros(3), delta=0.0)
    with pytest.raises(TypeError, match="prediction and target must be tensors"):
        huber_loss([0.0], torch.zeros(1))
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        ReplayBuffer(0, 4)
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(4, 2).sample(1, torch.Generator())
    with pytest.raises(ValueError, match="epsilon_end must be in"):
        DQNConfig(epsilon_end=2.0)
    with pytest.raises(TypeError, match="config must be a DQNConfig"):
        train_dqn(None)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        linear_epsilon(-1, 1.0, 0.1, 10)


def test_a_dqn_run_gives_the_same_bits_on_one_and_four_threads():
    """Chapter 14's live DQN claim is measured at one thread and holds at others because
    the run itself does not change: same weights, same episodes (on the book's CPU)."""
    config = DQNConfig(total_steps=700, learning_starts=200, train_every=128,
                       gradient_steps=16, target_every=128, seed=0)
    threads = torch.get_num_threads()
    runs = []
    try:
        for t in (1, 4):
            torch.set_num_threads(t)
            q_net, curve = train_dqn(config)
            runs.append((torch.cat([p.flatten() for p in q_net.parameters()]), curve))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
