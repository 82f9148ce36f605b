"""dlbook.train: the configuration, minibatches, the loop, evaluation and the history."""

import dataclasses
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from dlbook.data import make_blobs
from dlbook.train import (
    History,
    Schedule,
    TrainConfig,
    accuracy,
    evaluate,
    fit,
    make_optimizer,
    minibatches,
    train,
    train_step,
    warmup_cosine,
)

CPU = torch.device("cpu")
QUIET = TrainConfig(epochs=5, batch_size=16, lr=0.05, progress=False)


def blobs(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = make_blobs(n, [[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]], std=0.5, generator=g)
    return TensorDataset(x, y)


@pytest.mark.parametrize("changes, match", [
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"batch_size": 2.5}, "batch_size must be a positive int"),
    ({"accum": True}, "accum must be a positive int"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"momentum": 1.0}, r"momentum in \[0, 1\)"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"grad_clip": 0.0}, "grad_clip must be None or > 0"),
])
def test_config_rejects_bad_values(changes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dataclasses.replace(TrainConfig(), **changes)


def test_accuracy_counts_argmax_hits_and_checks_shapes():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.0, 1.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match=r"logits must be \(N, C\) and y \(N,\)"):
        accuracy(logits, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        accuracy(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))


class ListDataset(Dataset):
    """A map-style dataset that is not a TensorDataset, to exercise the DataLoader path."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@pytest.mark.parametrize("make", [TensorDataset, ListDataset])
def test_minibatches_cover_the_data_once_and_shuffle_reproducibly(make):
    data = make(torch.arange(10).float().unsqueeze(1), torch.arange(10))
    batches = list(minibatches(data, 4))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert torch.cat([y for _, y in batches]).tolist() == list(range(10))
    one = [y for _, y in minibatches(data, 4, True, torch.Generator().manual_seed(1))]
    two = [y for _, y in minibatches(data, 4, True, torch.Generator().manual_seed(1))]
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert sorted(torch.cat(one).tolist()) == list(range(10))
    assert torch.cat(one).tolist() != list(range(10))


def test_weight_decay_applies_to_matrices_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    for name, kind in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam),
                       ("adamw", torch.optim.AdamW)):
        opt = make_optimizer(model, dataclasses.replace(QUIET, optimizer=name, weight_decay=0.1))
        assert type(opt) is kind
        decayed, plain = opt.param_groups
        assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
        assert all(p.dim() == 2 for p in decayed["params"]) and len(decayed["params"]) == 2
        assert all(p.dim() == 1 for p in plain["params"]) and len(plain["params"]) == 4


def test_train_learns_separable_blobs_and_records_history():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    history = train(model, blobs(), QUIET, blobs(60, seed=1), device=CPU)
    assert isinstance(history, History)
    assert len(history.train_loss) == len(history.val_loss) == len(history.val_acc) == 5
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.val_acc[-1] >= 0.97 and history.seconds > 0
    result = evaluate(model, blobs(60, seed=1))
    assert result["accuracy"] == pytest.approx(history.val_acc[-1])
    assert result["loss"] == pytest.approx(history.val_loss[-1])


def test_overfit_one_batch_with_every_optimizer():
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(0))
    y = torch.arange(16) % 4
    for name, lr in (("sgd", 0.1), ("adam", 0.01), ("adamw", 0.01)):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 4))
        config = TrainConfig(epochs=150, batch_size=16, lr=lr, optimizer=name, progress=False)
        history = train(model, TensorDataset(x, y), config, device=CPU)
        assert history.train_loss[-1] < 0.05, (name, history.train_loss[-1])
        assert history.train_acc[-1] == 1.0 and history.val_loss == []


def test_same_seed_same_run_and_different_seed_different_run():
    def run(seed):
        torch.manual_seed(0)  # same initial weights
        model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.3), nn.Linear(8, 3))
        return train(model, blobs(), dataclasses.replace(QUIET, seed=seed), device=CPU).train_loss

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_restore_best_returns_the_best_epoch_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    config = dataclasses.replace(QUIET, epochs=12, lr=0.5, optimizer="sgd", restore_best=True)
    history = train(model, blobs(30), config, blobs(60, seed=1), device=CPU)
    best = history.best_epoch
    assert history.val_loss[best] == min(history.val_loss)
    assert evaluate(model, blobs(60, seed=1))["loss"] == pytest.approx(history.val_loss[best])
    with pytest.raises(ValueError, match="restore_best=True needs a val_set"):
        train(model, blobs(), config, device=CPU)


def test_gradient_clipping_bounds_the_first_step():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(epochs=1, batch_size=120, lr=1.0, optimizer="sgd", momentum=0.0,
                         grad_clip=0.01, progress=False)
    train(model, blobs(), config, device=CPU)
    pairs = zip(model.parameters(), before, strict=True)
    step = torch.cat([(p.detach() - b).flatten() for p, b in pairs])
    assert step.norm() <= 0.01 + 1e-6


def test_regression_loss_gives_nan_accuracy():
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    config = TrainConfig(epochs=40, batch_size=16, lr=0.05, progress=False)
    history = train(model, TensorDataset(x, y), config, TensorDataset(x, y), loss_fn=F.mse_loss,
                    device=CPU)
    assert history.val_loss[-1] < 1e-3
    assert math.isnan(history.val_acc[-1]) and math.isnan(history.train_acc[-1])


def test_evaluate_restores_mode_and_rejects_empty_data():
    model = nn.Sequential(nn.Linear(2, 3), nn.Dropout(0.5))
    model.train()
    evaluate(model, blobs())
    assert model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)))


def test_train_rejects_a_dict_config_and_empty_data():
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train(nn.Linear(2, 3), blobs(), {"epochs": 1})
    with pytest.raises(ValueError, match="train_set is empty"):
        train(nn.Linear(2, 3), TensorDataset(torch.zeros(0, 2), torch.zeros(0)), QUIET)


def test_progress_bar_only_when_asked(capsys):
    train(nn.Linear(2, 3), blobs(), QUIET, device=CPU)
    assert capsys.readouterr().err == ""
    train(nn.Linear(2, 3), blobs(), dataclasses.replace(QUIET, progress=True), device=CPU)
    out = capsys.readouterr()
    # not a terminal: no bar, but one clean summary line at the end
    assert out.err == "" and out.out.count("\n") == 1 and "\r" not in out.out
    assert out.out.startswith("training: 40 steps in") and "at the last step" in out.out


def test_model_and_batches_follow_the_device():
    device = torch.device("cuda") if torch.cuda.is_available() else CPU
    model = nn.Linear(2, 3)
    train(model, blobs(), dataclasses.replace(QUIET, epochs=1), blobs(), device=device)
    assert next(model.parameters()).device.type == device.type
    assert evaluate(model, blobs())["accuracy"] >= 0


# ----- fit: the one loop, on a stream of batches -----

def _stream(x, y, batch_size):
    """Consecutive minibatches of (x, y), cycling forever, in a fixed order."""
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]


def _mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x), y)


def _regression(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]])


def test_schedule_config_checks_and_fit_follows_warmup_cosine():
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 0"):
        Schedule(warmup_steps=-1)
    with pytest.raises(ValueError, match=r"min_ratio must be in \[0, 1\]"):
        Schedule(min_ratio=1.5)
    with pytest.raises(TypeError, match="schedule must be a Schedule"):
        TrainConfig(schedule=(5, 0.1))
    x, y = _regression()
    config = TrainConfig(steps=20, lr=0.1, optimizer="sgd", progress=False,
                         schedule=Schedule(warmup_steps=4, min_ratio=0.1))
    history = fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, config)
    expected = [0.1 * warmup_cosine(s, 4, 20, min_ratio=0.1) for s in range(20)]
    assert history.lr == pytest.approx(expected)
    assert history.lr[0] == pytest.approx(0.025) and history.lr[3] == pytest.approx(0.1)
    constant = fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, replace(config, schedule=Schedule()))
    assert constant.lr == [0.1] * 20  # the default schedule keeps the rate exactly


def test_accumulating_four_minibatches_equals_one_big_batch():
    x, y = _regression()
    models = []
    for batch_size, accum in ((4, 4), (16, 1)):
        torch.manual_seed(0)
        model = nn.Linear(3, 1)
        config = TrainConfig(steps=6, lr=0.05, optimizer="adam", accum=accum, grad_clip=0.5,
                             progress=False)
        history = fit(model, _stream(x, y, batch_size), _mse, config)
        assert len(history.step_loss) == 6
        models.append((model, history))
    (small, h_small), (big, h_big) = models
    for a, b in zip(small.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert h_small.step_loss == pytest.approx(h_big.step_loss, rel=1e-5)


def test_train_step_clears_stale_gradients_and_clips():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e6)  # left over from some earlier computation
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    train_step(model, optimizer, [_regression(16)], _mse, grad_clip=0.01)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before,
                                                                 strict=True)])
    assert step.norm() <= 0.01 + 1e-6
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="at least one batch"):
        train_step(model, optimizer, [], _mse)


def test_evaluation_hook_records_and_restore_best():
    x, y = _regression()
    calls = []

    def hook(model):
        calls.append(1)
        return {"loss": _mse(model, (x, y)).item()}

    config = TrainConfig(steps=25, lr=0.05, optimizer="sgd", eval_every=10, progress=False)
    history = fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, config, evaluate=hook)
    assert history.step == [10, 20, 25] and len(calls) == 3
    assert len(history.val_loss) == 3 and all(math.isnan(a) for a in history.val_acc)
    assert history.val_loss[-1] < history.val_loss[0] and len(history.step_loss) == 25
    assert history.best_epoch == 2 and len(history.elapsed) == 3
    with pytest.raises(ValueError, match="restore_best=True needs an evaluate hook"):
        fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, replace(config, restore_best=True))
    with pytest.raises(ValueError, match="fit needs config.steps"):
        fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, replace(config, steps=None))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, {"steps": 3})


def test_time_budget_and_a_finite_stream_stop_early():
    x, y = _regression()
    config = TrainConfig(steps=10**7, lr=0.01, max_seconds=0.3, eval_every=10**6, progress=False)
    history = fit(nn.Linear(3, 1), _stream(x, y, 16), _mse, config)
    assert 0.3 <= history.elapsed[-1] < 3.0 and len(history.step_loss) < 10**7
    assert history.step == [len(history.step_loss)]  # one final record
    finite = [(x[:16], y[:16])] * 5
    short = fit(nn.Linear(3, 1), finite, _mse, replace(config, max_seconds=None, eval_every=2))
    assert short.step == [2, 4, 5] and len(short.step_loss) == 5
    with pytest.raises(ValueError, match="max_seconds must be None or > 0"):
        replace(config, max_seconds=0)


def test_train_with_steps_and_accum_counts_optimizer_steps():
    model = nn.Linear(2, 3)
    config = replace(QUIET, epochs=3, accum=2)  # 120 examples: 8 minibatches, 4 steps per epoch
    history = train(model, blobs(), config, device=CPU)
    assert history.step == [4, 8, 12] and len(history.lr) == 12
    by_steps = train(nn.Linear(2, 3), blobs(), replace(QUIET, steps=5), device=CPU)
    assert len(by_steps.step_loss) == 5 and by_steps.step == [5]  # 5 steps < one epoch of 8
