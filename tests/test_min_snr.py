"""Min-SNR-gamma weighting (Hang et al., 2023) in dlbook.diffusion: the weights against
the paper's formula (for eps and v as in the authors' code), the weighted loss against a
hand-written one, gamma = inf against L_simple, and the record
dlbook/records/min_snr_seeds.json that chapter 8 reads."""

import importlib.util
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dlbook.checkpoint import shipped_record
from dlbook.diffusion import (
    DenoiserTrainConfig,
    DiffusionConfig,
    MLPDenoiser,
    MLPDenoiserConfig,
    NoiseSchedule,
    diffusion_loss,
    min_snr_weight,
    prediction_target,
    q_sample,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _schedule():
    return NoiseSchedule.from_config(DiffusionConfig(n_steps=200))


@pytest.mark.parametrize("gamma", [0.5, 5.0, 20.0])
def test_weights_follow_the_paper_for_each_target(gamma):
    ab = _schedule().alpha_bar.double()
    snr = ab / (1 - ab)
    for prediction, divisor in (("x0", 1.0), ("eps", snr), ("v", snr + 1)):
        expected = torch.minimum(snr, torch.full_like(snr, gamma)) / divisor
        torch.testing.assert_close(min_snr_weight(ab, prediction, gamma), expected)
    # the same weight on the x0 error, min(SNR, gamma), whatever the target: the plain
    # x0, eps and v losses weight the x0 error by 1, SNR and SNR + 1
    on_x0 = {
        "x0": min_snr_weight(ab, "x0", gamma),
        "eps": min_snr_weight(ab, "eps", gamma) * snr,
        "v": min_snr_weight(ab, "v", gamma) * (snr + 1),
    }
    for weight in on_x0.values():
        torch.testing.assert_close(weight, snr.clamp(max=gamma))
    # eps: 1 where SNR <= gamma (the noisy steps), gamma / SNR below that
    eps_weight = min_snr_weight(ab, "eps", gamma)
    assert torch.all(eps_weight[snr <= gamma] == 1)
    assert torch.all(eps_weight[snr > gamma] < 1)


def _fixed_draws(x0, schedule, seed):
    """The steps and noise diffusion_loss draws with a generator seeded ``seed``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, schedule.n_steps, (x0.shape[0],), generator=g)
    return t, torch.randn(x0.shape, generator=g)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_weighted_loss_matches_a_hand_written_one(prediction):
    schedule = _schedule()
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    x0 = torch.randn(64, 2)
    loss = diffusion_loss(
        model,
        x0,
        schedule,
        generator=torch.Generator().manual_seed(3),
        prediction=prediction,
        weighting="min_snr",
        gamma=5.0,
    )
    t, noise = _fixed_draws(x0, schedule, 3)
    ab = schedule.alpha_bar[t].double()
    snr = ab / (1 - ab)
    divisor = {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}[prediction]
    weight = snr.clamp(max=5.0) / divisor  # (B,)
    x_t = q_sample(x0, t, noise, schedule.alpha_bar)
    target = prediction_target(x0, noise, schedule.alpha_bar[t][:, None], prediction)
    with torch.no_grad():
        per_example = ((model(x_t, t) - target) ** 2).mean(1).double()
    expected = (weight * per_example).mean()
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-5)


def test_infinite_gamma_is_l_simple_exactly_for_eps():
    schedule = _schedule()
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    x0 = torch.randn(128, 2)

    def loss(**kwargs):
        gen = torch.Generator().manual_seed(5)
        return diffusion_loss(model, x0, schedule, generator=gen, **kwargs)

    uniform = loss()
    capped_never = loss(weighting="min_snr", gamma=math.inf)
    assert torch.equal(capped_never, uniform), (capped_never, uniform)
    # and its gradients are L_simple's
    grads = []
    for kwargs in ({}, {"weighting": "min_snr", "gamma": math.inf}):
        model.zero_grad()
        loss(**kwargs).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        assert torch.equal(a, b)
    # a finite cap changes the loss: every step with SNR > 5 is down-weighted
    assert loss(weighting="min_snr", gamma=5.0) < uniform


def test_bad_weighting_arguments_raise_clear_errors():
    schedule = _schedule()
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    x0 = torch.randn(8, 2)
    with pytest.raises(ValueError, match="weighting must be one of"):
        diffusion_loss(model, x0, schedule, weighting="snr")
    for gamma in (0.0, -1.0, float("nan"), "5"):
        with pytest.raises(ValueError, match="gamma must be a positive number"):
            diffusion_loss(model, x0, schedule, weighting="min_snr", gamma=gamma)
    with pytest.raises(ValueError, match="prediction must be one of"):
        min_snr_weight(schedule.alpha_bar, "score", 5.0)
    with pytest.raises(ValueError, match="weighting must be one of"):
        DenoiserTrainConfig(weighting="min-snr")
    with pytest.raises(ValueError, match="snr_gamma must be a positive number"):
        DenoiserTrainConfig(weighting="min_snr", snr_gamma=0)
    assert replace(DenoiserTrainConfig(), weighting="min_snr").snr_gamma == 5.0


# ----- the record chapter 8 reads


@pytest.fixture(scope="module")
def record() -> dict:
    record = shipped_record("min_snr_seeds")
    assert record["command"].startswith("OMP_NUM_THREADS=1 python scripts/min_snr_seeds.py")
    return record


def _runs(record, steps):
    """{(threads, seed): (uniform run, min_snr run)} for ``steps``."""
    pairs = {}
    for key in record["runs"]:
        threads, seed, n, weighting = key.split("/")
        if int(n) == steps and weighting == "uniform":
            pairs[threads, seed] = (
                record["runs"][key],
                record["runs"][f"{threads}/{seed}/{n}/min_snr"],
            )
    return pairs


def test_the_record_holds_three_seeds_and_three_thread_counts(record):
    for steps in (700, 200):
        pairs = _runs(record, steps)
        assert set(pairs) == {(t, s) for t in "124" for s in "012"}, sorted(pairs)
        for uniform, min_snr in pairs.values():
            assert len(uniform["eps_mse"]) == len(record["error_steps"]) == 100
            assert len(min_snr["eps_mse"]) == 100


def test_the_records_claims(record):
    """What chapter 8 says of Min-SNR on the moons, on every run of the record: the
    capped steps (t <= 26) are learnt worse, the others equally well, DDPM samples are
    never closer to the held-out points, and 10-step DDIM samples differ little."""
    capped = torch.tensor(record["error_steps"]) < 26
    for steps in (700, 200):
        for uniform, min_snr in _runs(record, steps).values():
            e_u, e_m = torch.tensor(uniform["eps_mse"]), torch.tensor(min_snr["eps_mse"])
            assert e_m[capped].mean() > e_u[capped].mean() + 0.01
            assert abs(e_m[~capped].mean() - e_u[~capped].mean()) < 0.002
            assert min_snr["sw_ddpm"] > uniform["sw_ddpm"]
            assert abs(min_snr["sw_ddim10"] - uniform["sw_ddim10"]) < 0.03


def test_one_recorded_run_reproduces(record, monkeypatch):
    """Re-train the record's 200-step Min-SNR run at seed offset 0 (one thread here;
    about 10 s) and compare it with the record's run at the same thread count."""
    monkeypatch.syspath_prepend(str(SCRIPTS))  # the script imports moons_setup
    monkeypatch.setenv("DLBOOK_SEED_OFFSET", "0")
    spec = importlib.util.spec_from_file_location("min_snr_seeds", SCRIPTS / "min_snr_seeds.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    again = script.train_and_score("min_snr", 200)
    threads = torch.get_num_threads()
    recorded = record["runs"][f"{threads if threads in (1, 2, 4) else 1}/0/200/min_snr"]
    # another machine or thread count changes the order of float sums, and sampling
    # amplifies it a little
    assert abs(again["loss"] - recorded["loss"]) < 0.01, (again, recorded)
    assert abs(again["sw_ddpm"] - recorded["sw_ddpm"]) < 0.01, (again, recorded)
    gaps = [abs(a - b) for a, b in zip(again["eps_mse"], recorded["eps_mse"])]
    assert max(gaps) < 0.05, max(gaps)
    sys.modules.pop("moons_setup", None)
