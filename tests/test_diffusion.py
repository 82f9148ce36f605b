"""Tests of dlbook.diffusion: schedules, the forward process, the samplers, the denoisers and the
sliced Wasserstein distance, plus a re-validation of the committed digits checkpoint."""

import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from dlbook.checkpoint import shipped_checkpoint
from dlbook.data import load_digits
from dlbook.diffusion import (
    DenoiserTrainConfig,
    DiffusionConfig,
    MLPDenoiser,
    MLPDenoiserConfig,
    NoiseSchedule,
    TinyUNet,
    UNetConfig,
    ddim_sample,
    ddim_steps,
    ddpm_sample,
    ddpm_steps,
    diffusion_loss,
    make_betas,
    predict_noise,
    q_sample,
    q_step,
    sliced_wasserstein,
    timestep_embedding,
    train_denoiser,
)
from dlbook.digits import (
    DIGITS_CHECKPOINT,
    generate,
    load_trained_digits,
    save_trained_digits,
    score_samples,
    to_model_range,
)
from dlbook.train import TrainConfig, evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def schedule(n_steps=100, kind="linear"):
    return NoiseSchedule.from_config(DiffusionConfig(n_steps=n_steps, schedule=kind))


class GaussianOracle(nn.Module):
    """The exact noise predictor E[eps | x_t] when the data are N(mu, s^2 I): x_t is then
    N(sqrt(ab) mu, (ab s^2 + 1 - ab) I), and E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) mu) /
    (ab s^2 + 1 - ab)."""

    def __init__(self, alpha_bar, mu, s):
        super().__init__()
        self.config = MLPDenoiserConfig()  # n_classes None: unconditional
        self.register_buffer("alpha_bar", alpha_bar)
        self.dummy = nn.Parameter(torch.zeros(()))  # samplers read the device from parameters
        self.mu, self.s = mu, s

    def forward(self, x, t, y=None):
        ab = self.alpha_bar[t].view(-1, *[1] * (x.dim() - 1))
        return (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / (ab * self.s**2 + 1 - ab)


# ----- schedules -----

@settings(max_examples=25, deadline=None)
@given(n_steps=st.integers(25, 2000), kind=st.sampled_from(["linear", "cosine"]))
def test_alpha_bar_is_strictly_decreasing_and_inside_the_unit_interval(n_steps, kind):
    s = schedule(n_steps, kind)
    assert s.alpha_bar.dtype == torch.float32 and s.alpha_bar.shape == (n_steps,)
    assert torch.all(s.alpha_bar > 0) and torch.all(s.alpha_bar < 1)
    assert torch.all(s.alpha_bar[1:] < s.alpha_bar[:-1])
    assert torch.all((s.betas > 0) & (s.betas < 1))
    # the process ends close to pure noise whatever T is
    assert s.alpha_bar[-1] < 1e-2


def test_schedule_is_computed_in_float64_then_stored_in_float32():
    betas = make_betas(DiffusionConfig())
    assert betas.dtype == torch.float64
    s = NoiseSchedule.from_config(DiffusionConfig())
    exact = torch.cumprod(1 - betas, 0)
    assert torch.allclose(s.alpha_bar.double(), exact, rtol=1e-6, atol=0)
    assert torch.allclose(s.alphas, (1 - betas).float()) and torch.allclose(s.betas, betas.float())


def test_linear_schedule_matches_ho_et_al_and_cosine_matches_its_formula():
    betas = make_betas(DiffusionConfig())
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    T, s = 1000, 0.008
    cosine = NoiseSchedule.from_config(DiffusionConfig(n_steps=T, schedule="cosine"))
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    for t in (0, 10, 500, 900):  # alpha_bar_t is f(t + 1) / f(0) while beta is not clipped
        assert cosine.alpha_bar[t].item() == pytest.approx(f[t + 1] / f[0], rel=1e-5)


def test_fewer_linear_steps_scale_the_betas():
    short = make_betas(DiffusionConfig(n_steps=100))
    assert short[0].item() == pytest.approx(1e-3) and short[-1].item() == pytest.approx(0.2)


# ----- forward process -----

@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_closed_form_q_matches_iterating_the_one_step_process(kind):
    """Mean and variance of x_t, from q_sample and from t + 1 calls of q_step, agree with
    sqrt(alpha_bar_t) x_0 and 1 - alpha_bar_t, to within five standard errors."""
    gen = torch.Generator().manual_seed(0)
    s, n = schedule(100, kind), 20_000
    x0 = torch.tensor([1.5, -2.0, 0.0, 0.7]).repeat(n, 1)  # (n, 4): four points, n chains each
    for t_last in (0, 9, 49, 99):
        x = x0
        for t in range(t_last + 1):
            steps = torch.full((n,), t, dtype=torch.int64)
            x = q_step(x, steps, torch.randn(x.shape, generator=gen), s.betas)
        steps = torch.full((n,), t_last, dtype=torch.int64)
        direct = q_sample(x0, steps, torch.randn(x0.shape, generator=gen), s.alpha_bar)
        ab = s.alpha_bar[t_last].double()
        mean, var = ab.sqrt() * x0[0].double(), 1 - ab
        for samples in (x.double(), direct.double()):
            se_mean = (var / n).sqrt()
            se_var = var * math.sqrt(2 / (n - 1))
            assert torch.all((samples.mean(0) - mean).abs() < 5 * se_mean), samples.mean(0)
            assert torch.all((samples.var(0) - var).abs() < 5 * se_var), samples.var(0)


def test_q_sample_is_deterministic_given_the_noise():
    s = schedule()
    x0, noise = torch.randn(3, 2), torch.randn(3, 2)
    t = torch.tensor([0, 50, 99])
    xt = q_sample(x0, t, noise, s.alpha_bar)
    ab = s.alpha_bar[t][:, None]
    assert torch.allclose(xt, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)


# ----- samplers -----

@pytest.mark.parametrize("sampler, n_steps, eta, rtol", [
    ("ddpm", 1000, None, 0.03), ("ddim", 1000, 0.0, 0.03), ("ddim", 1000, 1.0, 0.03),
    ("ddim", 50, 0.0, 0.1),
])
def test_samplers_with_the_exact_denoiser_recover_the_data_distribution(sampler, n_steps, eta,
                                                                        rtol):
    """For Gaussian data the optimal eps-predictor is known in closed form; sampling with it must
    give back mean mu and standard deviation s. With T = 1000 steps the discretization error is
    about 1% (the standard error of the estimate is 0.5%); 50 DDIM steps lose about 5%."""
    s = schedule(1000)
    mu, sd = torch.tensor([2.0, -1.0]), 0.5
    oracle = GaussianOracle(s.alpha_bar, mu, sd)
    gen = torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        x = ddpm_sample(oracle, (20_000, 2), s, generator=gen)
    else:
        x = ddim_sample(oracle, (20_000, 2), s, n_steps, eta=eta, generator=gen)
    assert torch.allclose(x.mean(0), mu, atol=0.02), x.mean(0)
    assert torch.allclose(x.std(0), torch.full((2,), sd), rtol=rtol), x.std(0)


def test_sampler_shapes_steps_and_seeding():
    s = schedule(30)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    path = list(ddpm_steps(model, (7, 2), s, generator=torch.Generator().manual_seed(0)))
    assert [t for t, _ in path] == list(range(30, -1, -1))
    assert all(x.shape == (7, 2) for _, x in path)
    path = list(ddim_steps(model, (7, 2), s, 5, generator=torch.Generator().manual_seed(0)))
    assert [t for t, _ in path] == [30, 23, 15, 8, 1, 0]
    for sample, kwargs in ((ddpm_sample, {}), (ddim_sample, {"n_steps": 5, "eta": 0.5})):
        a = sample(model, (7, 2), s, generator=torch.Generator().manual_seed(3), **kwargs)
        b = sample(model, (7, 2), s, generator=torch.Generator().manual_seed(3), **kwargs)
        c = sample(model, (7, 2), s, generator=torch.Generator().manual_seed(4), **kwargs)
        assert a.shape == (7, 2) and torch.equal(a, b) and not torch.allclose(a, c)


def test_ddim_with_eta_zero_draws_only_the_starting_noise():
    s = schedule(50)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    gen, reference = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x = ddim_sample(model, (4, 2), s, 10, generator=gen)
    x_T = torch.randn((4, 2), generator=reference)
    assert torch.isfinite(x).all()
    assert torch.equal(gen.get_state(), reference.get_state())  # nothing drawn after x_T
    # so the map x_T -> x_0 is a deterministic function of x_T
    steps = list(ddim_steps(model, (4, 2), s, 10, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(steps[0][1], x_T) and torch.equal(steps[-1][1], x)


def test_clip_bounds_the_final_samples():
    s = schedule(50)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=16, n_blocks=1))
    x = ddim_sample(model, (64, 2), s, 10, clip=1.0, generator=torch.Generator().manual_seed(0))
    assert x.abs().max() <= 1.0 + 1e-5
    x = ddpm_sample(model, (64, 2), s, clip=1.0, generator=torch.Generator().manual_seed(0))
    assert x.abs().max() <= 1.0 + 1e-5


def test_classifier_free_guidance_combines_conditional_and_unconditional_predictions():
    torch.manual_seed(0)
    model = TinyUNet(UNetConfig(channels=(8, 16), emb_dim=16, groups=4)).eval()
    x, t, y = torch.randn(5, 1, 8, 8), torch.randint(0, 100, (5,)), torch.arange(5)
    with torch.no_grad():
        cond, uncond = model(x, t, y), model(x, t, torch.full_like(y, 10))
        assert torch.allclose(predict_noise(model, x, t, y, 1.0), cond, atol=1e-6)
        assert torch.allclose(predict_noise(model, x, t, y, 0.0), uncond, atol=1e-5)
        guided = predict_noise(model, x, t, y, 3.0)
        assert torch.allclose(guided, uncond + 3.0 * (cond - uncond), atol=1e-5)
        assert torch.allclose(model(x, t), uncond)  # no labels means the null label


# ----- models and training -----

def test_timestep_embedding():
    e = timestep_embedding(torch.tensor([0, 5]), 8)
    assert e.shape == (2, 8)
    assert torch.equal(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert e[1, 0].item() == pytest.approx(math.sin(5.0))


@pytest.mark.parametrize("make", [
    lambda: (MLPDenoiser(MLPDenoiserConfig(hidden=32, n_blocks=1)), (8, 2), None),
    lambda: (TinyUNet(UNetConfig(channels=(8, 16), emb_dim=16, groups=4)), (8, 1, 8, 8),
             torch.arange(8)),
])
def test_each_denoiser_overfits_one_batch(make):
    torch.manual_seed(0)
    model, shape, y = make()
    x, t, noise = torch.randn(shape), torch.randint(0, 100, (shape[0],)), torch.randn(shape)
    xt = q_sample(x, t, noise, schedule().alpha_bar)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(100):
        loss = nn.functional.mse_loss(model(xt, t, y), noise)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.02 * first, (first, loss.item())


def test_diffusion_loss_is_reproducible_and_label_dropout_uses_the_null_label():
    model = TinyUNet(UNetConfig(channels=(8, 16), emb_dim=16, groups=4))
    x0, y, s = torch.randn(6, 1, 8, 8), torch.arange(6), schedule()
    a = diffusion_loss(model, x0, s, y, 0.5, generator=torch.Generator().manual_seed(0))
    b = diffusion_loss(model, x0, s, y, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    seen = []
    model.embed_y.register_forward_hook(lambda m, inp, out: seen.append(inp[0].clone()))
    diffusion_loss(model, x0, s, y, 1.0)
    assert torch.all(seen[-1] == 10)
    diffusion_loss(model, x0, s, y, 0.0)
    assert torch.equal(seen[-1], y)


def test_train_denoiser_reduces_the_loss_on_2d_data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 2, generator=gen) * 0.1 + torch.tensor([1.0, -1.0])
    torch.manual_seed(0)
    model = MLPDenoiser(MLPDenoiserConfig(hidden=32, n_blocks=1))
    training = replace(DenoiserTrainConfig().training, steps=150, batch_size=128, lr=3e-3,
                       progress=False)
    history = train_denoiser(model, x, schedule(50), DenoiserTrainConfig(training=training))
    losses = history.step_loss
    assert len(losses) == 150 and not model.training
    assert history.lr[0] == 3e-3 and history.lr[-1] < 1e-5  # the cosine decays to 0
    with pytest.raises(ValueError, match="training.steps must be set"):
        DenoiserTrainConfig(training=TrainConfig())
    assert sum(losses[-20:]) / 20 < 0.6 * sum(losses[:20]) / 20


# ----- sliced Wasserstein -----

def test_sliced_wasserstein_is_zero_for_equal_clouds_and_measures_a_shift():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2000, 3, generator=gen)
    assert sliced_wasserstein(a, a) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([0.6, 0.0, 0.8])  # |shift| = 1
    # each projection moves by shift . theta, whose mean square is |shift|^2 / D
    d = sliced_wasserstein(a, a + shift, n_projections=1000, generator=gen)
    assert d == pytest.approx(1 / math.sqrt(3), rel=0.05)
    b = torch.randn(1500, 3, generator=gen)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert sliced_wasserstein(a, b, generator=g1) == pytest.approx(
        sliced_wasserstein(b, a, generator=g2), rel=1e-9)
    assert sliced_wasserstein(a, b) < 0.1 < sliced_wasserstein(a, 2 * b)


# ----- errors -----

def test_bad_arguments_raise_clear_errors():
    s = schedule()
    mlp = MLPDenoiser()
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_betas(DiffusionConfig(schedule="quadratic"))
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        make_betas(DiffusionConfig(n_steps=0))
    with pytest.raises(ValueError, match="beta_end \\* 1000 / T < 1"):
        make_betas(DiffusionConfig(n_steps=10))
    with pytest.raises(ValueError, match="noise must have the shape of x0"):
        q_sample(torch.zeros(3, 2), torch.zeros(3, dtype=torch.int64), torch.zeros(3, 3),
                 s.alpha_bar)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 99\]"):
        q_sample(torch.zeros(2, 2), torch.tensor([0, 100]), torch.zeros(2, 2), s.alpha_bar)
    with pytest.raises(ValueError, match="t must be an int64 tensor of shape"):
        q_step(torch.zeros(2, 2), torch.tensor([0.0, 1.0]), torch.zeros(2, 2), s.betas)
    with pytest.raises(ValueError, match="shape must be a tuple of positive ints"):
        ddpm_sample(mlp, [4, 2], s)
    with pytest.raises(ValueError, match=r"n_steps must be an int in \[1, 100\]"):
        ddim_sample(mlp, (4, 2), s, 101)
    with pytest.raises(ValueError, match="not class-conditional"):
        ddim_sample(mlp, (4, 2), s, 10, y=torch.arange(4))
    with pytest.raises(ValueError, match="x must have shape \\(B, 2\\)"):
        mlp(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64))
    unet = TinyUNet()
    with pytest.raises(ValueError, match=r"y must be an int64 tensor of shape \(4,\)"):
        ddim_sample(unet, (4, 1, 8, 8), s, 10, y=torch.arange(3))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\)"):
        unet(torch.zeros(2, 1, 7, 7), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="groups must divide channels"):
        TinyUNet(replace(UNetConfig(), channels=(12, 24)))
    with pytest.raises(ValueError, match="p_uncond must be in"):
        diffusion_loss(unet, torch.zeros(2, 1, 8, 8), s, torch.arange(2), p_uncond=1.5)
    with pytest.raises(ValueError, match="same D"):
        sliced_wasserstein(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="dim must be even"):
        timestep_embedding(torch.zeros(2), 7)


# ----- the committed digits checkpoint -----

@pytest.fixture(scope="module")
def checkpoint():
    return load_trained_digits(device=torch.device("cpu"))  # the shipped one, verified


def test_checkpoint_is_small_and_its_scorer_is_a_good_classifier(checkpoint):
    size = shipped_checkpoint(DIGITS_CHECKPOINT).stat().st_size
    assert size < 2**20, size  # under 1 MiB
    test = load_digits(as_images=True).test
    assert evaluate(checkpoint.classifier, test)["accuracy"] >= 0.95
    # real test digits, put in the diffusion range, are scored as the classifier's accuracy
    x, y = test.tensors
    assert score_samples(checkpoint.classifier, to_model_range(x), y)["accuracy"] >= 0.95


def test_checkpoint_generates_digits_the_classifier_recognises(checkpoint):
    """The quality bar of chapter 8, re-measured with a seed the training script did not use."""
    recipe = checkpoint.recipe
    labels = torch.arange(10).repeat(10)  # 100 digits, 10 of each class
    images = generate(checkpoint.model, checkpoint.schedule, labels,
                      sample_steps=recipe["sample_steps"], guidance=recipe["guidance"], seed=123)
    assert images.shape == (100, 1, 8, 8)
    score = score_samples(checkpoint.classifier, images, labels)
    assert score["accuracy"] >= 0.9, score
    assert score["confidence"] >= 0.9, score
    # without labels (guidance 0: the unconditional model) every class still appears
    free = generate(checkpoint.model, checkpoint.schedule, labels, sample_steps=20,
                    guidance=0.0, seed=123)
    assert min(score_samples(checkpoint.classifier, free)["counts"]) >= 1
    # the numbers the training script recorded meet the same bar
    assert checkpoint.metrics["conditional"]["accuracy"] >= 0.9
    assert checkpoint.metrics["conditional"]["confidence"] >= 0.9


def test_checkpoint_round_trip(checkpoint, tmp_path):
    save_trained_digits(tmp_path / "digits.pt", model=checkpoint.model,
                        classifier=checkpoint.classifier, recipe=checkpoint.recipe,
                        metrics=checkpoint.metrics)
    again = load_trained_digits(tmp_path / "digits.pt", device=torch.device("cpu"))
    assert again.recipe == checkpoint.recipe and again.metrics == checkpoint.metrics
    assert torch.equal(again.schedule.alpha_bar, checkpoint.schedule.alpha_bar)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 50, 199])
    with torch.no_grad():
        y = torch.arange(3)
        assert torch.equal(again.model(x, t, y), checkpoint.model(x, t, y))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_trained_digits(tmp_path / "missing.pt")
    with pytest.raises(FileExistsError, match="digits.pt exists"):  # never replaced silently
        save_trained_digits(tmp_path / "digits.pt", model=checkpoint.model,
                            classifier=checkpoint.classifier, recipe=checkpoint.recipe,
                            metrics=checkpoint.metrics)
