"""Tests of dlbook.rl: the Bellman equations solved three ways, Q-learning, and the helpers."""

import numpy as np
import pytest
import torch

from dlbook.rl import (
    bellman_backup,
    epsilon_greedy,
    evaluate_policy,
    evaluate_policy_iterative,
    evaluate_policy_linear,
    greedy_return,
    make_gridworld,
    mlp,
    policy_iteration,
    q_learning,
    value_iteration,
)

SUTTON_BARTO = ["T...", "....", "....", "...T"]  # example 4.1: -1 per step, two exits


def _uniform(mdp):
    return torch.full((mdp.n_states, mdp.n_actions), 0.25, dtype=torch.float64)


def test_random_policy_values_are_those_of_sutton_and_barto_figure_4_1():
    mdp = make_gridworld(SUTTON_BARTO)
    v_iter, sweeps = evaluate_policy_iterative(mdp, _uniform(mdp))
    v_linear = evaluate_policy_linear(mdp, _uniform(mdp))
    torch.testing.assert_close(v_iter, v_linear, atol=1e-8, rtol=0)
    book = torch.tensor([0, -14, -20, -22, -14, -18, -20, -20, -20, -20, -18, -14,
                         -22, -20, -14, 0], dtype=torch.float64)
    torch.testing.assert_close(v_linear, book, atol=1e-9, rtol=0)
    assert sweeps > 100  # gamma = 1: information travels one cell per sweep, slowly


def test_linear_solution_matches_numpy_on_the_full_system_with_discounting():
    layout = ["..#.G", ".S...", "#..X."]
    mdp = make_gridworld(layout, {"G": 5.0, "X": -5.0}, step_reward=-0.1, gamma=0.9)
    g = torch.Generator().manual_seed(0)
    policy = torch.softmax(torch.randn(mdp.n_states, 4, generator=g, dtype=torch.float64), 1)
    # with gamma < 1 the whole (I - gamma P_pi) is invertible: solve it in NumPy, terminals too
    P_pi = np.einsum("sa,sat->st", policy.numpy(), mdp.P.numpy())
    r_pi = (policy * mdp.R).sum(1).numpy()
    expected = np.linalg.solve(np.eye(mdp.n_states) - 0.9 * P_pi, r_pi)
    np.testing.assert_allclose(evaluate_policy_linear(mdp, policy).numpy(), expected, atol=1e-10)
    v_iter, _ = evaluate_policy_iterative(mdp, policy, tol=1e-13)
    np.testing.assert_allclose(v_iter.numpy(), expected, atol=1e-10)


def test_value_and_policy_iteration_find_the_shortest_paths():
    mdp = make_gridworld(SUTTON_BARTO)
    v_vi, pi_vi, _ = value_iteration(mdp)
    v_pi, pi_pi, _ = policy_iteration(mdp)
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    distance = torch.minimum(rows + cols, 6 - rows - cols).flatten().double()
    torch.testing.assert_close(v_vi, -distance)  # -1 per step to the nearest exit
    torch.testing.assert_close(v_pi, -distance)
    # both are optimal: v* satisfies the Bellman optimality equation, and so do the policies
    torch.testing.assert_close(bellman_backup(mdp, v_vi).max(1).values, v_vi)
    for policy in (pi_vi, pi_pi):
        torch.testing.assert_close(evaluate_policy_linear(mdp, policy), -distance)


def test_q_learning_with_random_behaviour_learns_the_optimal_q():
    """Q-learning is off-policy: even a uniformly random behaviour (epsilon = 1) converges to
    Q* = R + gamma P v*, here on a deterministic corridor."""
    mdp = make_gridworld(["A.S..B"], {"A": 1.0, "B": 10.0}, step_reward=0.0, gamma=0.9)
    v_star, _, _ = value_iteration(mdp)
    q_star = bellman_backup(mdp, v_star)
    Q, returns = q_learning(mdp, episodes=400, alpha=0.5, epsilon=1.0, seed=0)
    live = ~mdp.terminal
    torch.testing.assert_close(Q[live], q_star[live], atol=1e-3, rtol=0)
    assert len(returns) == 400 and greedy_return(mdp, Q) == 10.0


def test_epsilon_greedy_breaks_ties_at_random_and_explores():
    g = torch.Generator().manual_seed(0)
    ties = [epsilon_greedy(torch.tensor([1.0, 3.0, 3.0, 0.0]), 0.0, g) for _ in range(400)]
    assert set(ties) == {1, 2} and 150 < ties.count(1) < 250
    random = [epsilon_greedy(torch.tensor([0.0, 9.0]), 1.0, g) for _ in range(400)]
    assert 150 < random.count(0) < 250


def test_evaluate_policy_repeats_and_mlp_has_the_asked_sizes():
    push_right = lambda obs: 1  # noqa: E731
    first = evaluate_policy(push_right, [3, 4, 5])
    assert first == evaluate_policy(push_right, [3, 4, 5])
    assert all(5 <= r < 30 for r in first)  # pushing one way drops the pole within a second
    net = mlp([4, 8, 2])
    assert net(torch.zeros(3, 4)).shape == (3, 2) and len(net) == 3


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="same non-zero length"):
        make_gridworld(["..", "..."])
    with pytest.raises(TypeError, match="layout must be a non-empty list of str"):
        make_gridworld("....")
    with pytest.raises(ValueError, match="gamma must be in"):
        make_gridworld(SUTTON_BARTO, gamma=1.5)
    mdp = make_gridworld(SUTTON_BARTO)
    with pytest.raises(ValueError, match=r"policy must be a \(16, 4\) tensor"):
        evaluate_policy_linear(mdp, torch.ones(16, 3))
    with pytest.raises(ValueError, match="policy rows must sum to 1"):
        evaluate_policy_iterative(mdp, torch.ones(16, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="episodes must be a positive int"):
        q_learning(mdp, episodes=0)
    with pytest.raises(ValueError, match="epsilon must be in"):
        q_learning(mdp, episodes=1, epsilon=1.5)
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        evaluate_policy(lambda obs: 0, [])
    with pytest.raises(ValueError, match="sizes must be a list of at least two"):
        mlp([4])
