"""Tabular reinforcement learning: a gridworld MDP as tensors, the Bellman equations,
Q-learning.

A finite Markov decision process (Sutton and Barto, 2018, chapter 3) is held as two
tensors: ``P[s, a, s']``, the probability of moving from state ``s`` to ``s'`` under
action ``a``, and ``R[s, a]``, the expected reward of that step. Terminal states are
absorbing and pay nothing, so every algorithm can sweep all states alike. Everything
here is float64: the point of the tabular part is to see the equations hold exactly, not
to be fast. The last part holds what the deep methods share: a small MLP, a gymnasium
environment, and evaluation over seeded episodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import nn

from dlbook.utils import check_positive_int, check_real, make_generator

# up, down, left, right as (row, column) moves
ACTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))
ARROWS = "^v<>"


@dataclass(frozen=True)
class MDP:
    """A finite MDP with S states and A actions."""

    P: torch.Tensor  # (S, A, S) transition probabilities; each P[s, a] sums to 1
    R: torch.Tensor  # (S, A) expected reward of taking a in s
    gamma: float  # discount factor in [0, 1]
    terminal: torch.Tensor  # (S,) bool: absorbing states that pay nothing
    start: int  # the state an episode starts in
    shape: tuple[int, int] = (0, 0)  # (rows, columns) of a gridworld, for printing

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]


def make_gridworld(
    layout: list[str],
    rewards: dict[str, float] | None = None,
    step_reward: float = -1.0,
    gamma: float = 1.0,
) -> MDP:
    """A deterministic gridworld from a picture: one string per row.

    ``.`` is a floor cell, ``S`` the start (a floor cell), ``#`` a wall, and any other
    character a terminal cell; entering it pays ``step_reward + rewards[char]`` (0 extra
    if the character is not in ``rewards``). The four actions move up, down, left and
    right; a move into a wall or off the grid leaves the agent where it is and still
    pays ``step_reward``.
    """
    if (
        not isinstance(layout, list)
        or not layout
        or not all(isinstance(r, str) for r in layout)
    ):
        raise TypeError(f"layout must be a non-empty list of str, got {layout!r:.60}")
    if len({len(row) for row in layout}) != 1 or not layout[0]:
        raise ValueError(
            f"layout rows must all have the same non-zero length, got "
            f"lengths "
            f"{[len(row) for row in layout]}"
        )
    rewards = {} if rewards is None else rewards
    check_real(step_reward, "step_reward")
    check_real(gamma, "gamma", 0.0, 1.0)
    rows, cols = len(layout), len(layout[0])
    S, A = rows * cols, len(ACTIONS)
    P = torch.zeros(S, A, S, dtype=torch.float64)
    R = torch.zeros(S, A, dtype=torch.float64)
    terminal = torch.tensor([ch not in ".S#" for row in layout for ch in row])
    starts = [i for i, ch in enumerate("".join(layout)) if ch == "S"]
    for s in range(S):
        r, c = divmod(s, cols)
        for a, (dr, dc) in enumerate(ACTIONS):
            # absorbing, reward 0 (walls are unreachable)
            if terminal[s] or layout[r][c] == "#":
                P[s, a, s] = 1.0
                continue
            nr, nc = r + dr, c + dc
            if not (0 <= nr < rows and 0 <= nc < cols) or layout[nr][nc] == "#":
                nr, nc = r, c
            s_next = nr * cols + nc
            P[s, a, s_next] = 1.0
            R[s, a] = step_reward + (
                rewards.get(layout[nr][nc], 0.0) if terminal[s_next] else 0.0
            )
    return MDP(P, R, gamma, terminal, starts[0] if starts else 0, (rows, cols))


def _check_policy(mdp: MDP, policy: torch.Tensor) -> None:
    if not isinstance(policy, torch.Tensor) or policy.shape != (
        mdp.n_states,
        mdp.n_actions,
    ):
        got = (
            tuple(policy.shape)
            if isinstance(policy, torch.Tensor)
            else type(policy).__name__
        )
        raise ValueError(
            f"policy must be a ({mdp.n_states}, {mdp.n_actions}) tensor "
            f"of "
            f"action probabilities, got {got}"
        )
    if not torch.allclose(
        policy.sum(1).double(), torch.ones(mdp.n_states, dtype=torch.float64)
    ):
        raise ValueError(
            "policy rows must sum to 1 (pi(a | s) is a distribution over actions)"
        )


def bellman_backup(mdp: MDP, v: torch.Tensor) -> torch.Tensor:
    """Action values q(s, a) = R[s, a] + gamma * sum_s' P[s, a, s'] v(s'); shape (S,
    A)."""
    return mdp.R + mdp.gamma * torch.einsum("sat,t->sa", mdp.P, v)


def evaluate_policy_iterative(
    mdp: MDP, policy: torch.Tensor, tol: float = 1e-10, max_sweeps: int = 100_000
) -> tuple[torch.Tensor, int]:
    """Iterative policy evaluation (Sutton and Barto, 2018, section 4.1).

    Applies v <- sum_a pi(a | s) q(s, a), the Bellman expectation backup, to every
    state at once until the largest change is below ``tol``. Returns v (S,) and the
    number of sweeps.
    """
    _check_policy(mdp, policy)
    check_real(tol, "tol", 0.0, low_open=True)
    check_positive_int(max_sweeps, "max_sweeps")
    v = torch.zeros(mdp.n_states, dtype=torch.float64)
    for sweep in range(1, max_sweeps + 1):
        v_new = (policy * bellman_backup(mdp, v)).sum(1)  # (S,)
        change = (v_new - v).abs().max().item()
        v = v_new
        if change < tol:
            return v, sweep
    raise ValueError(
        f"policy evaluation did not converge in {max_sweeps} sweeps (a "
        f"policy that never reaches a terminal state has infinite cost "
        f"when gamma = 1)"
    )


def evaluate_policy_linear(mdp: MDP, policy: torch.Tensor) -> torch.Tensor:
    """Solve the Bellman expectation equation v = r_pi + gamma P_pi v directly.

    Terminal states have v = 0, so only the others are unknowns:
    (I - gamma P_pi[N, N]) v_N = r_pi[N], with N the non-terminal states.
    """
    _check_policy(mdp, policy)
    P_pi = torch.einsum("sa,sat->st", policy, mdp.P)  # (S, S): state-to-state under pi
    r_pi = (policy * mdp.R).sum(1)  # (S,)
    keep = ~mdp.terminal
    identity = torch.eye(int(keep.sum()), dtype=torch.float64)
    A = identity - mdp.gamma * P_pi[keep][:, keep]  # (N, N)
    v = torch.zeros(mdp.n_states, dtype=torch.float64)
    v[keep] = torch.linalg.solve(A, r_pi[keep])
    return v


def greedy_policy(mdp: MDP, v: torch.Tensor) -> torch.Tensor:
    """The deterministic policy that is greedy with respect to v, as one-hot rows (S,
    A)."""
    q = bellman_backup(mdp, v)
    return torch.nn.functional.one_hot(q.argmax(1), mdp.n_actions).double()


def value_iteration(
    mdp: MDP, tol: float = 1e-10, max_sweeps: int = 100_000
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Value iteration (Sutton and Barto, 2018, section 4.4): v <- max_a q(s, a) until
    stable.

    Returns the optimal values v* (S,), a greedy optimal policy (S, A) and the sweeps
    taken.
    """
    check_real(tol, "tol", 0.0, low_open=True)
    check_positive_int(max_sweeps, "max_sweeps")
    v = torch.zeros(mdp.n_states, dtype=torch.float64)
    for sweep in range(1, max_sweeps + 1):
        v_new = bellman_backup(mdp, v).max(1).values  # Bellman optimality backup
        change = (v_new - v).abs().max().item()
        v = v_new
        if change < tol:
            return v, greedy_policy(mdp, v), sweep
    raise ValueError(f"value iteration did not converge in {max_sweeps} sweeps")


def policy_iteration(
    mdp: MDP, policy: torch.Tensor | None = None, max_iterations: int = 1000
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Policy iteration (Sutton and Barto, 2018, section 4.3): evaluate exactly, act
    greedily, repeat until the policy stops changing. ``policy`` defaults to uniform.

    Returns v (S,), the final policy (S, A) and the number of improvement steps.
    """
    if policy is None:
        policy = torch.full(
            (mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions, dtype=torch.float64
        )
    check_positive_int(max_iterations, "max_iterations")
    for iteration in range(1, max_iterations + 1):
        v = evaluate_policy_linear(mdp, policy)
        improved = greedy_policy(mdp, v)
        if torch.equal(improved, policy):
            return v, policy, iteration
        policy = improved
    raise ValueError(
        f"policy iteration did not converge in {max_iterations} iterations"
    )


def epsilon_greedy(
    q_row: torch.Tensor, epsilon: float, generator: torch.Generator
) -> int:
    """With probability epsilon a uniformly random action, else a greedy one (ties
    broken at random, so that an all-zero row is a random action rather than always the
    first)."""
    if torch.rand((), generator=generator).item() < epsilon:
        return int(torch.randint(len(q_row), (), generator=generator))
    best = torch.nonzero(q_row == q_row.max()).flatten()
    return int(best[torch.randint(len(best), (), generator=generator)])


def q_learning(
    mdp: MDP,
    episodes: int,
    alpha: float = 0.5,
    epsilon: float = 0.1,
    max_steps: int = 200,
    seed: int = 0,
) -> tuple[torch.Tensor, list[float]]:
    """Tabular Q-learning (Watkins, 1989; Sutton and Barto, 2018, section 6.5).

    After each step (s, a, r, s'):
    Q[s, a] += alpha * (r + gamma * max_a' Q[s', a'] - Q[s, a]),
    with max_a' Q[s', .] = 0 at a terminal s'. Actions are epsilon-greedy; Q starts at
    0; the random draws come from ``make_generator(seed)``.
    Returns Q (S, A) and the undiscounted return of every training episode.
    """
    check_positive_int(episodes, "episodes")
    check_real(alpha, "alpha", 0.0, 1.0, low_open=True)
    check_real(epsilon, "epsilon", 0.0, 1.0)
    check_positive_int(max_steps, "max_steps")
    generator = make_generator(seed)
    Q = torch.zeros(mdp.n_states, mdp.n_actions, dtype=torch.float64)
    returns = []
    for _ in range(episodes):
        s, total = mdp.start, 0.0
        for _ in range(max_steps):
            a = epsilon_greedy(Q[s], epsilon, generator)
            s_next = int(torch.multinomial(mdp.P[s, a], 1, generator=generator))
            r = mdp.R[s, a].item()
            future = 0.0 if mdp.terminal[s_next] else Q[s_next].max().item()
            target = r + mdp.gamma * future
            Q[s, a] += alpha * (target - Q[s, a])  # the TD error, scaled by alpha
            total += r
            s = s_next
            if mdp.terminal[s]:
                break
        returns.append(total)
    return Q, returns


def greedy_return(mdp: MDP, Q: torch.Tensor, max_steps: int = 200) -> float:
    """The undiscounted return of one episode that always takes argmax_a Q[s, a] (no
    exploration), from the start state; deterministic for a deterministic MDP."""
    s, total = mdp.start, 0.0
    for _ in range(max_steps):
        a = int(Q[s].argmax())
        total += mdp.R[s, a].item()
        s = int(mdp.P[s, a].argmax())
        if mdp.terminal[s]:
            break
    return total


def policy_arrows(mdp: MDP, policy: torch.Tensor, layout: list[str]) -> list[str]:
    """The policy drawn on the grid: an arrow per floor cell, the layout's own character
    elsewhere."""
    rows, cols = mdp.shape
    best = policy.argmax(1)
    return [
        "".join(
            ARROWS[int(best[r * cols + c])] if layout[r][c] in ".S" else layout[r][c]
            for c in range(cols)
        )
        for r in range(rows)
    ]


# ----- function approximation: helpers shared by DQN (dlbook.dqn) and PPO (dlbook.ppo)
# -----


def mlp(sizes: list[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """A multilayer perceptron: Linear layers of the given sizes, ``activation`` between
    them."""
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise ValueError(
            f"sizes must be a list of at least two layer widths, got {sizes!r}"
        )
    for i, size in enumerate(sizes):
        check_positive_int(size, f"sizes[{i}]")
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def make_env(env_id: str = "CartPole-v1") -> gym.Env:
    """A gymnasium environment (CartPole-v1 by default: 500 steps at most, +1 per
    step)."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__}")
    return gym.make(env_id)


def evaluate_policy(
    act: Callable[[torch.Tensor], int], seeds: list[int], env_id: str = "CartPole-v1"
) -> list[float]:
    """The return of one episode per seed, each started with ``env.reset(seed=seed)``.

    ``act`` maps an observation (a float32 tensor) to an action; the episodes are
    exactly repeatable when ``act`` is deterministic.
    """
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ValueError(f"seeds must be a non-empty list of ints, got {seeds!r}")
    env = make_env(env_id)
    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(torch.as_tensor(obs)))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns
