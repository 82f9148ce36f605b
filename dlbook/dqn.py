"""Deep Q-networks (Mnih et al., 2015): Q-learning with a neural network, made stable.

Three ingredients turn tabular Q-learning (``dlbook.rl.q_learning``) into DQN: a replay
buffer that breaks the correlation between consecutive steps, a target network, a
periodically copied, frozen Q that the TD targets are computed with, and the Huber loss,
which limits the gradient of one large TD error. Exploration is epsilon-greedy with
epsilon decayed linearly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from dlbook.rl import make_env, mlp
from dlbook.utils import (
    check_int,
    check_positive_int,
    check_real,
    make_generator,
    seed_offset,
    set_seed,
)


def huber_loss(
    prediction: torch.Tensor, target: torch.Tensor, delta: float = 1.0
) -> torch.Tensor:
    """Mean Huber loss of the error d: ``0.5 d^2`` where ``|d| <= delta``, else
    ``delta (|d| - 0.5 delta)``.

    Quadratic near 0 like the squared error, linear far out like the absolute error,
    so a single huge TD error cannot produce a huge gradient: it is at most delta.
    Mnih et al. (2015) clip the error term to [-1, 1], which is this with delta = 1.
    """
    if not isinstance(prediction, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(
            f"prediction and target must be tensors, got "
            f"{type(prediction).__name__} and {type(target).__name__}"
        )
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    check_real(delta, "delta", 0.0, low_open=True)
    error = (prediction - target).abs()
    quadratic = 0.5 * error**2
    linear = delta * (error - 0.5 * delta)
    return torch.where(error <= delta, quadratic, linear).mean()


def linear_epsilon(step: int, start: float, end: float, decay_steps: int) -> float:
    """Epsilon falling linearly from ``start`` to ``end`` over ``decay_steps``, then
    flat."""
    check_int(step, "step", minimum=0)
    check_positive_int(decay_steps, "decay_steps")
    fraction = min(1.0, step / decay_steps)
    return start + fraction * (end - start)


class ReplayBuffer:
    """A fixed-size ring buffer of transitions (s, a, r, s', terminated), stored as
    tensors.

    Once full, each new transition overwrites the oldest. ``terminated`` is 1 only when
    the episode really ended (the pole fell), not when a time limit cut it: after a time
    limit the state still has a future, and the TD target keeps bootstrapping from it.
    """

    def __init__(self, capacity: int, obs_dim: int):
        check_positive_int(capacity, "capacity")
        check_positive_int(obs_dim, "obs_dim")
        self.capacity, self.size, self.next = capacity, 0, 0
        self.obs = torch.zeros(capacity, obs_dim)
        self.next_obs = torch.zeros(capacity, obs_dim)
        self.actions = torch.zeros(capacity, dtype=torch.long)
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool) -> None:
        """Store one transition in the oldest slot."""
        i = self.next
        self.obs[i] = torch.as_tensor(obs)
        self.next_obs[i] = torch.as_tensor(next_obs)
        self.actions[i], self.rewards[i], self.terminated[i] = (
            action,
            reward,
            float(terminated),
        )
        self.next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        """A uniform random batch (with replacement): obs, actions, rewards, next_obs,
        terminated."""
        check_positive_int(batch_size, "batch_size")
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), generator=generator)
        return (
            self.obs[idx],
            self.actions[idx],
            self.rewards[idx],
            self.next_obs[idx],
            self.terminated[idx],
        )


def td_targets(
    target_net: nn.Module,
    rewards: torch.Tensor,
    next_obs: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """y = r + gamma * max_a' Q_target(s', a') * (1 - terminated), without a
    gradient."""
    with torch.no_grad():
        next_q = target_net(next_obs).max(1).values  # (B,)
    return rewards + gamma * next_q * (1.0 - terminated)


@dataclass(frozen=True)
class DQNConfig:
    """DQN on a discrete-action gymnasium task. Defaults are RL Baselines3 Zoo's
    CartPole-v1 settings (Raffin, 2020; marked "almost tuned" there), with a buffer of
    50,000 instead of 100,000 transitions, which 50,000 steps never fill either way.
    They are not Mnih et al.'s Atari settings (a convolutional network on frames, 50
    million frames, a replay memory of a million, a target copy every 10,000
    updates)."""

    env_id: str = "CartPole-v1"  # the gymnasium task
    total_steps: int = 50_000  # environment steps in all
    # transitions the replay buffer keeps (the oldest are dropped)
    buffer_size: int = 50_000
    learning_starts: int = 1_000  # random steps before the first update
    batch_size: int = 64  # transitions per gradient step
    lr: float = 2.3e-3  # Adam's learning rate
    gamma: float = 0.99  # discount factor
    train_every: int = 256  # environment steps between two bursts of updates ...
    gradient_steps: int = 128  # ... of this many gradient steps each
    # environment steps between two copies to the target network
    target_every: int = 256
    epsilon_start: float = 1.0  # exploration at the start ...
    epsilon_end: float = 0.04  # ... and at the end of the decay
    epsilon_fraction: float = 0.16  # fraction of total_steps over which epsilon decays
    hidden: int = 256  # width of the two hidden layers
    max_grad_norm: float = 10.0  # gradient clipping
    seed: int = 0  # weights, sampling and environment resets

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "buffer_size",
            "batch_size",
            "train_every",
            "gradient_steps",
            "target_every",
            "hidden",
        ):
            check_positive_int(getattr(self, name), name)
        check_int(self.learning_starts, "learning_starts", minimum=0)
        check_real(self.lr, "lr", 0.0, low_open=True)
        for name in ("gamma", "epsilon_start", "epsilon_end"):
            check_real(getattr(self, name), name, 0.0, 1.0)
        check_real(self.epsilon_fraction, "epsilon_fraction", 0.0, 1.0, low_open=True)
        check_real(self.max_grad_norm, "max_grad_norm", 0.0, low_open=True)


class QNetwork(nn.Module):
    """Q(s, .) for every action at once: an MLP from observations (B, obs_dim) to (B,
    A)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 256):
        super().__init__()
        self.net = mlp([obs_dim, hidden, hidden, n_actions], activation=nn.ReLU)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> int:
        """argmax_a Q(s, a) for one observation: the greedy policy."""
        return int(self(obs.float()[None]).argmax())


def dqn_step(
    q_net: QNetwork,
    target_net: QNetwork,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, ...],
    config: DQNConfig,
) -> float:
    """One gradient step on the Huber loss between Q(s, a) and the TD targets."""
    obs, actions, rewards, next_obs, terminated = batch
    targets = td_targets(target_net, rewards, next_obs, terminated, config.gamma)
    q = q_net(obs).gather(1, actions[:, None]).squeeze(1)  # Q(s, a), actions taken
    loss = huber_loss(q, targets)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
    optimizer.step()
    return loss.item()


def train_dqn(config: DQNConfig) -> tuple[QNetwork, list[tuple[int, float]]]:
    """Train a Q-network with DQN; return it and (environment step, return) of every
    finished training episode. Like PPO, this alternates acting and learning, so it is
    not a ``dlbook.train.fit`` call."""
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got {type(config).__name__}")
    set_seed(config.seed)  # the weights
    generator = make_generator(config.seed)  # actions, exploration and minibatches
    env = make_env(config.env_id)
    obs_dim, n_actions = env.observation_space.shape[0], env.action_space.n
    q_net = QNetwork(obs_dim, n_actions, config.hidden)
    target_net = copy.deepcopy(q_net).requires_grad_(False)
    optimizer = torch.optim.Adam(q_net.parameters(), lr=config.lr)
    buffer = ReplayBuffer(config.buffer_size, obs_dim)
    decay_steps = max(1, int(config.epsilon_fraction * config.total_steps))
    # later resets continue its stream
    obs, _ = env.reset(seed=config.seed + seed_offset())
    episode_return, returns = 0.0, []
    for step in range(config.total_steps):
        epsilon = linear_epsilon(
            step, config.epsilon_start, config.epsilon_end, decay_steps
        )
        if (
            step < config.learning_starts
            or torch.rand((), generator=generator) < epsilon
        ):
            action = int(torch.randint(n_actions, (), generator=generator))
        else:
            action = q_net.act(torch.as_tensor(obs))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated)
        episode_return += reward
        obs = next_obs
        if terminated or truncated:
            returns.append((step + 1, episode_return))
            episode_return = 0.0
            obs, _ = env.reset()
        if step >= config.learning_starts and (step + 1) % config.train_every == 0:
            for _ in range(config.gradient_steps):
                dqn_step(
                    q_net,
                    target_net,
                    optimizer,
                    buffer.sample(config.batch_size, generator),
                    config,
                )
        if (step + 1) % config.target_every == 0:
            target_net.load_state_dict(q_net.state_dict())
    env.close()
    return q_net.eval(), returns
