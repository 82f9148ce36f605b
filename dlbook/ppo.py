"""Policy gradients: REINFORCE with a baseline, generalized advantage estimation, and
PPO.

The policy gradient theorem turns "make high-return trajectories more likely" into a
loss: the gradient of the expected return is E[grad log pi(a | s) * A(s, a)] (Williams,
1992; Sutton and Barto, 2018, chapter 13). This module computes the advantages A with
GAE (Schulman et al., 2016) and optimizes PPO's clipped surrogate objective (Schulman et
al., 2017) on a gymnasium environment, collecting experience with one environment, step
by step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dlbook.checkpoint import load_checkpoint, save_checkpoint, shipped_checkpoint
from dlbook.dqn import DQNConfig, QNetwork
from dlbook.rl import make_env, mlp
from dlbook.utils import (
    check_positive_int,
    check_real,
    make_generator,
    seed_offset,
    set_seed,
)


def _check_1d(name: str, value: torch.Tensor, length: int | None = None) -> None:
    if not isinstance(value, torch.Tensor) or value.dim() != 1:
        got = (
            tuple(value.shape)
            if isinstance(value, torch.Tensor)
            else type(value).__name__
        )
        raise ValueError(f"{name} must be a 1-D tensor (T,), got {got}")
    if length is not None and len(value) != length:
        raise ValueError(
            f"{name} must have length {length} like rewards, got {len(value)}"
        )


def discounted_returns(
    rewards: torch.Tensor, dones: torch.Tensor, gamma: float, last_value: float = 0.0
) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1}, restarted after every step with done = 1.

    Args:
        rewards: (T,) rewards of consecutive steps, possibly spanning several episodes.
        dones: (T,) 1.0 where the episode ended at that step, else 0.0.
        gamma: discount factor in [0, 1].
        last_value: the value that stands in for the return after step T - 1 when the
            rollout was cut off mid-episode (0 for a finished one).
    """
    _check_1d("rewards", rewards)
    _check_1d("dones", dones, len(rewards))
    check_real(gamma, "gamma", 0.0, 1.0)
    returns = torch.zeros_like(rewards)
    future = float(last_value)
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * future * (1.0 - dones[t])
        returns[t] = future
    return returns


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: float,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al., 2016, equation 16).

    The TD error and the advantage, computed backwards in time::

        delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)
        A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}
            = sum_l (gamma lam)^l delta_{t+l}   (within an episode)

    Args:
        rewards, values, dones: (T,) per step; values[t] = V(s_t).
        last_value: V of the state after the last step (ignored if that step was done).
        gamma: discount factor; lam: the GAE parameter (0: one-step TD, 1: Monte Carlo).
    Returns:
        advantages (T,) and the value targets advantages + values (T,).
    """
    _check_1d("rewards", rewards)
    _check_1d("values", values, len(rewards))
    _check_1d("dones", dones, len(rewards))
    check_real(gamma, "gamma", 0.0, 1.0)
    check_real(lam, "lam", 0.0, 1.0)
    advantages = torch.zeros_like(rewards)
    next_value, next_advantage = float(last_value), 0.0
    for t in reversed(range(len(rewards))):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_advantage = delta + gamma * lam * not_done * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def reinforce_loss(
    log_probs: torch.Tensor, returns: torch.Tensor, baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """REINFORCE with a baseline (Williams, 1992):
    -mean(log pi(a_t | s_t) * (G_t - b(s_t))).

    Its gradient is the Monte Carlo estimate of -grad J; the baseline (detached) changes
    the variance of the estimate, not its mean.
    """
    _check_1d("log_probs", log_probs)
    _check_1d("returns", returns, len(log_probs))
    if isinstance(baseline, torch.Tensor):
        baseline = baseline.detach()  # b must not be trained by this loss
    advantage = returns - baseline
    return -(log_probs * advantage).mean()


def clipped_surrogate(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip: float = 0.2,
) -> torch.Tensor:
    """PPO's clipped objective (Schulman et al., 2017, equation 7), negated as a loss.

    L = -mean(min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)), with the ratio
    rho_t = pi(a_t | s_t) / pi_old(a_t | s_t). Once rho_t leaves [1 - eps, 1 + eps] in
    the direction that A_t rewards, the term is constant, so its gradient is 0: one
    batch cannot push the policy far from the old one.
    """
    _check_1d("log_probs", log_probs)
    _check_1d("old_log_probs", old_log_probs, len(log_probs))
    _check_1d("advantages", advantages, len(log_probs))
    check_real(clip, "clip", 0.0, 1.0, low_open=True)
    ratio = torch.exp(log_probs - old_log_probs.detach())
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * advantages
    return -torch.min(unclipped, clipped).mean()


@dataclass(frozen=True)
class PPOConfig:
    """PPO on a discrete-action gymnasium task. Defaults are CleanRL's ``ppo.py``
    settings (Huang et al., 2022), with four departures: one environment with 512-step
    rollouts instead of 4 environments x 128 steps, 200,000 steps instead of 500,000,
    PyTorch's default initialization and an unclipped value loss instead of
    orthogonal initialization and a clipped one, and a bootstrapped value at the
    500-step time limit (an episode cut short by time is not a failure)."""

    env_id: str = "CartPole-v1"  # the gymnasium task
    total_steps: int = 200_000  # environment steps in all
    rollout_steps: int = 512  # steps collected between two updates
    epochs: int = 4  # passes over each rollout
    minibatch_size: int = 128  # samples per gradient step
    lr: float = 2.5e-4  # Adam's learning rate, decayed linearly to 0
    gamma: float = 0.99  # discount factor
    lam: float = 0.95  # GAE parameter
    clip: float = 0.2  # epsilon of the clipped objective
    value_coef: float = 0.5  # weight of the value loss
    entropy_coef: float = 0.01  # weight of the entropy bonus
    max_grad_norm: float = 0.5  # gradient clipping
    hidden: int = 64  # width of the two hidden layers of each network
    seed: int = 0  # weights, sampling and environment resets

    def __post_init__(self) -> None:
        for name in (
            "total_steps",
            "rollout_steps",
            "epochs",
            "minibatch_size",
            "hidden",
        ):
            check_positive_int(getattr(self, name), name)
        check_real(self.lr, "lr", 0.0, low_open=True)
        for name in ("gamma", "lam"):
            check_real(getattr(self, name), name, 0.0, 1.0)
        check_real(self.clip, "clip", 0.0, 1.0, low_open=True)
        for name in ("value_coef", "entropy_coef", "max_grad_norm"):
            check_real(getattr(self, name), name, 0.0)


class ActorCritic(nn.Module):
    """A policy pi(a | s) (logits) and a value V(s), two separate tanh MLPs."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.policy = mlp([obs_dim, hidden, hidden, n_actions])
        self.value = mlp([obs_dim, hidden, hidden, 1])

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, A) and values (B,) for observations (B, obs_dim)."""
        return self.policy(obs), self.value(obs).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> int:
        """The most probable action for one observation: the greedy policy used to
        evaluate."""
        return int(self.policy(obs.float()).argmax())


@dataclass
class Rollout:
    """Consecutive steps of experience, each field (T,) or (T, obs_dim)."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor
    last_value: float  # V of the state after the last step


def collect(
    model: ActorCritic,
    env,
    obs,
    steps: int,
    gamma: float,
    generator: torch.Generator,
    episode: dict,
) -> tuple[Rollout, object]:
    """Run the sampling policy for ``steps`` steps; return the rollout and the next
    observation.

    A time-limit truncation is not a real end: its reward gets gamma * V(final state)
    added, so the value target does not pretend the pole fell. ``episode`` tracks the
    running return and collects finished ones in ``episode["returns"]`` (with the step
    at which they ended).
    """
    fields = {
        k: [] for k in ("obs", "actions", "log_probs", "values", "rewards", "dones")
    }
    for _ in range(steps):
        x = torch.as_tensor(obs, dtype=torch.float32)
        with torch.no_grad():
            logits, value = model(x[None])
            log_p = torch.log_softmax(logits[0], -1)
        action = int(torch.multinomial(log_p.exp(), 1, generator=generator))
        obs, reward, terminated, truncated, _ = env.step(action)
        episode["return"] += reward
        episode["step"] += 1
        if truncated and not terminated:  # bootstrap through the time limit
            with torch.no_grad():
                reward += (
                    gamma
                    * model(torch.as_tensor(obs, dtype=torch.float32)[None])[1].item()
                )
        for key, item in zip(
            fields,
            (
                x,
                action,
                log_p[action].item(),
                value.item(),
                reward,
                float(terminated or truncated),
            ),
        ):
            fields[key].append(item)
        if terminated or truncated:
            episode["returns"].append((episode["step"], episode["return"]))
            episode["return"] = 0.0
            obs, _ = env.reset()
    with torch.no_grad():
        last_value = model(torch.as_tensor(obs, dtype=torch.float32)[None])[1].item()
    rollout = Rollout(
        torch.stack(fields["obs"]),
        torch.tensor(fields["actions"]),
        *(
            torch.tensor(fields[k], dtype=torch.float32)
            for k in ("log_probs", "values", "rewards", "dones")
        ),
        last_value,
    )
    return rollout, obs


def ppo_update(
    model: ActorCritic,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    config: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Several epochs of minibatch steps on one rollout; the last step's losses."""
    advantages, targets = gae(
        rollout.rewards,
        rollout.values,
        rollout.dones,
        rollout.last_value,
        config.gamma,
        config.lam,
    )
    T = len(rollout.rewards)
    for _ in range(config.epochs):
        order = torch.randperm(T, generator=generator)
        for start in range(0, T, config.minibatch_size):
            idx = order[start : start + config.minibatch_size]
            logits, values = model(rollout.obs[idx])
            log_p_all = torch.log_softmax(logits, -1)  # (B, A)
            log_p = log_p_all.gather(1, rollout.actions[idx, None]).squeeze(1)
            adv = advantages[idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)  # per-minibatch normalization
            old_log_p = rollout.log_probs[idx]
            policy_loss = clipped_surrogate(log_p, old_log_p, adv, config.clip)
            value_loss = ((values - targets[idx]) ** 2).mean()
            entropy = -(log_p_all.exp() * log_p_all).sum(-1).mean()
            loss = (
                policy_loss
                + config.value_coef * value_loss
                - config.entropy_coef * entropy
            )
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
    return {
        "policy_loss": policy_loss.item(),
        "value_loss": value_loss.item(),
        "entropy": entropy.item(),
    }


def train_ppo(config: PPOConfig) -> tuple[ActorCritic, list[tuple[int, float]]]:
    """Train an actor-critic with PPO; return it and (environment step, return) of every
    finished training episode.

    This is not a ``dlbook.train.fit`` call: the data are not a fixed dataset but
    experience that the current policy collects, so collecting and updating alternate.
    """
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    set_seed(config.seed)  # the weights
    generator = make_generator(config.seed)  # actions, exploration and minibatches
    env = make_env(config.env_id)
    model = ActorCritic(
        env.observation_space.shape[0], env.action_space.n, config.hidden
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, eps=1e-5)
    updates = max(1, config.total_steps // config.rollout_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: 1.0 - u / updates)
    # later resets continue its stream
    obs, _ = env.reset(seed=config.seed + seed_offset())
    episode = {"return": 0.0, "step": 0, "returns": []}
    for _ in range(updates):
        rollout, obs = collect(
            model, env, obs, config.rollout_steps, config.gamma, generator, episode
        )
        model.train()
        ppo_update(model, optimizer, rollout, config, generator)
        schedule.step()
    env.close()
    return model.eval(), episode["returns"]


def ppo_record(config: PPOConfig) -> dict:
    """The config as JSON values, for a checkpoint's header."""
    return asdict(config)


# ----- the shipped CartPole agents (scripts/train_rl.py) -----

CARTPOLE_CHECKPOINT = "cartpole_agents.pt"
CARTPOLE_KIND = "cartpole_agents"
EVAL_SEEDS = list(range(1000, 1020))  # the 20 fixed evaluation episodes of the chapter
# other episodes, used only to pick a training seed
SELECTION_SEEDS = list(range(2000, 2020))


def save_cartpole_agents(
    path,
    *,
    ppo: ActorCritic,
    dqn: nn.Module,
    config: dict,
    extra: dict,
    force: bool = False,
):
    """Save the PPO actor-critic and the DQN Q-network in one dlbook checkpoint."""
    state = {"ppo": ppo.state_dict(), "dqn": dqn.state_dict()}
    return save_checkpoint(
        path,
        kind=CARTPOLE_KIND,
        config=config,
        state_dict=state,
        extra=extra,
        force=force,
    )


def load_cartpole_agents(path=None) -> tuple[ActorCritic, nn.Module, dict]:
    """The shipped (or given) CartPole agents: PPO's actor-critic, DQN's Q-network (both
    in eval mode) and the record (configs, learning curves of every seed,
    evaluations)."""
    path = shipped_checkpoint(CARTPOLE_CHECKPOINT) if path is None else path
    saved = load_checkpoint(path, kind=CARTPOLE_KIND)
    ppo_config, dqn_config = (
        PPOConfig(**saved.config["ppo"]),
        DQNConfig(**saved.config["dqn"]),
    )
    ppo = ActorCritic(4, 2, ppo_config.hidden)
    ppo.load_state_dict(saved.state_dict["ppo"])
    dqn = QNetwork(4, 2, dqn_config.hidden)
    dqn.load_state_dict(saved.state_dict["dqn"])
    return ppo.eval(), dqn.eval(), {**saved.config, **saved.extra}
