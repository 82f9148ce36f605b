"""Tests of dlbook.ppo: returns, GAE and the clipped objective against independent
computations, REINFORCE's gradient against the exact one, and the shipped CartPole agents."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from dlbook.ppo import (
    EVAL_SEEDS,
    ActorCritic,
    PPOConfig,
    clipped_surrogate,
    discounted_returns,
    gae,
    load_cartpole_agents,
    reinforce_loss,
    train_ppo,
)
from dlbook.rl import evaluate_policy


def _episodes():
    """Two and a half episodes of random rewards and values, in float64."""
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(11, generator=g, dtype=torch.float64)
    values = torch.randn(11, generator=g, dtype=torch.float64)
    dones = torch.zeros(11, dtype=torch.float64)
    dones[[3, 7]] = 1.0  # episodes end after steps 3 and 7; the last one is cut off
    return rewards, values, dones


def _segments(dones):
    """(start, end) of each episode's steps, end exclusive."""
    ends = [i + 1 for i, d in enumerate(dones.tolist()) if d] + [len(dones)]
    return list(zip([0] + ends[:-1], ends))


def test_discounted_returns_equal_the_explicit_sums():
    rewards, _, dones = _episodes()
    gamma, last = 0.9, 2.5
    returns = discounted_returns(rewards, dones, gamma, last_value=last)
    for start, end in _segments(dones):
        cut_off = not dones[end - 1]
        for t in range(start, end):
            expected = sum(gamma ** (k - t) * rewards[k].item() for k in range(t, end))
            expected += gamma ** (end - t) * last if cut_off else 0.0
            assert returns[t].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 0.0), (0.8, 1.0), (1.0, 0.5)])
def test_gae_equals_the_sum_of_discounted_td_errors(gamma, lam):
    rewards, values, dones = _episodes()
    last = 0.7
    advantages, targets = gae(rewards, values, dones, last, gamma, lam)
    for start, end in _segments(dones):
        # V(s_{t+1}) within the episode; 0 after its last step, or last_value if cut off
        after = last if not dones[end - 1] else 0.0
        next_values = [values[k + 1].item() for k in range(start, end - 1)] + [after]
        deltas = [rewards[k].item() + gamma * next_values[k - start] - values[k].item()
                  for k in range(start, end)]
        for t in range(start, end):  # A_t = sum_l (gamma lam)^l delta_{t+l}, eq. 16
            expected = sum((gamma * lam) ** (k - t) * deltas[k - start] for k in range(t, end))
            assert advantages[t].item() == pytest.approx(expected, abs=1e-12)
    torch.testing.assert_close(targets, advantages + values)


def test_gae_with_lambda_one_is_the_monte_carlo_return_minus_the_value():
    rewards, values, dones = _episodes()
    advantages, targets = gae(rewards, values, dones, 0.3, gamma=0.95, lam=1.0)
    torch.testing.assert_close(targets, discounted_returns(rewards, dones, 0.95, 0.3))


def _clipped_by_cases(ratio, advantage, eps):
    """PPO's objective for one sample, written out case by case (Schulman et al., 2017,
    figure 1): positive advantages are capped at 1 + eps, negative ones at 1 - eps."""
    if advantage >= 0:
        return min(ratio, 1 + eps) * advantage
    return max(ratio, 1 - eps) * advantage


def test_clipped_surrogate_matches_the_case_analysis_and_its_gradient():
    g = torch.Generator().manual_seed(1)
    old = torch.randn(200, generator=g, dtype=torch.float64)
    new = (old + 0.5 * torch.randn(200, generator=g, dtype=torch.float64)).requires_grad_()
    adv = torch.randn(200, generator=g, dtype=torch.float64)
    eps = 0.2
    loss = clipped_surrogate(new, old, adv, eps)
    ratios = torch.exp(new - old).tolist()
    expected = -sum(_clipped_by_cases(r, a, eps) for r, a in zip(ratios, adv.tolist())) / 200
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    loss.backward()
    for r, a, grad in zip(ratios, adv.tolist(), new.grad.tolist()):
        flat = (a >= 0 and r > 1 + eps) or (a < 0 and r < 1 - eps)  # the clipped side
        expected_grad = 0.0 if flat else -r * a / 200  # d(r A)/d log pi = r A
        assert grad == pytest.approx(expected_grad, abs=1e-12)


def test_clipped_surrogate_at_ratio_one_has_the_policy_gradient():
    log_p = torch.tensor([-0.3, -1.2, -2.0], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    clipped_surrogate(log_p, log_p.detach(), adv).backward()
    torch.testing.assert_close(log_p.grad, -adv / 3)  # = grad of reinforce_loss


def test_reinforce_gradient_is_unbiased_and_the_baseline_keeps_it_so():
    """Enumerate every action of a 4-way softmax policy: the expected REINFORCE gradient equals
    the exact gradient of E[R], with or without a baseline (the log-derivative trick)."""
    logits = torch.tensor([0.2, -0.5, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    reward = torch.tensor([1.0, 3.0, -2.0, 0.5], dtype=torch.float64)
    probs = torch.softmax(logits, 0)
    (exact,) = torch.autograd.grad((probs * reward).sum(), logits)
    for baseline in (0.0, 2.0):
        expected = torch.zeros(4, dtype=torch.float64)
        for a in range(4):
            log_p = torch.log_softmax(logits, 0)[a]
            loss = reinforce_loss(log_p[None], reward[a:a + 1], baseline)
            (grad,) = torch.autograd.grad(loss, logits)
            expected += probs[a].detach() * -grad  # weight each action by its probability
        torch.testing.assert_close(expected, exact)


def test_bad_inputs_are_refused():
    r = torch.zeros(3)
    with pytest.raises(ValueError, match="values must have length 3"):
        gae(r, torch.zeros(2), r, 0.0)
    with pytest.raises(ValueError, match="rewards must be a 1-D tensor"):
        discounted_returns(torch.zeros(2, 2), r, 0.9)
    with pytest.raises(ValueError, match="gamma must be in"):
        gae(r, r, r, 0.0, gamma=1.5)
    with pytest.raises(ValueError, match="clip must be in"):
        clipped_surrogate(r, r, r, clip=0.0)
    with pytest.raises(ValueError, match="rollout_steps must be a positive int"):
        PPOConfig(rollout_steps=0)
    with pytest.raises(TypeError, match="config must be a PPOConfig"):
        train_ppo({"total_steps": 10})


def test_a_short_ppo_run_records_its_episodes():
    model, curve = train_ppo(PPOConfig(total_steps=256, rollout_steps=128, epochs=1))
    assert isinstance(model, ActorCritic) and not model.training
    steps = [s for s, _ in curve]
    assert steps == sorted(steps) and steps[-1] <= 256
    assert all(1 <= ret <= 500 for _, ret in curve)


def test_the_shipped_agents_solve_cartpole_on_the_evaluation_episodes():
    """The chapter's claim, re-validated: mean return >= 475 over the 20 fixed episodes."""
    ppo, dqn, record = load_cartpole_agents()
    returns = evaluate_policy(ppo.act, EVAL_SEEDS)
    assert sum(returns) / len(returns) >= 475
    shipped = record["shipped_seed"]["ppo"]
    saved = next(r for r in record["runs"]["ppo"] if r["seed"] == shipped)
    assert sum(saved["eval"]) / 20 >= 475  # as when the script evaluated it
    assert math.isfinite(sum(record["runs"]["dqn"][0]["curve_returns"]))


def _train_rl_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "train_rl.py"
    spec = importlib.util.spec_from_file_location("train_rl", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_rl_script_saves_loadable_agents_and_refuses_to_overwrite(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # leave the session alone
    script = _train_rl_script()
    out = tmp_path / "agents.pt"
    tiny = ["--seeds", "0", "1", "--ppo_steps", "512", "--dqn_steps", "1100", "--out", str(out)]
    script.main(tiny)
    ppo, dqn, record = load_cartpole_agents(out)
    assert record["seeds"] == [0, 1] and len(record["runs"]["dqn"]) == 2
    assert record["ppo"]["total_steps"] == 512 and record["eval_seeds"] == EVAL_SEEDS
    best = max(record["runs"]["ppo"], key=lambda r: sum(r["selection"]))
    assert record["shipped_seed"]["ppo"] == best["seed"]
    assert evaluate_policy(ppo.act, EVAL_SEEDS[:3]) == best["eval"][:3]  # the saved weights
    with pytest.raises(SystemExit, match="exists"):
        script.main(tiny)
