"""dlbook.train: the configuration, minibatches, the loop, evaluation and the history."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from dlbook.data import make_blobs
from dlbook.train import (
    History,
    TrainConfig,
    accuracy,
    evaluate,
    make_optimizer,
    minibatches,
    train,
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
    ({"lr": 0.0}, "lr must be > 0"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"momentum": 1.0}, r"momentum in \[0, 1\)"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"grad_clip": 0.0}, "grad_clip must be None or > 0"),
])
def test_config_rejects_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
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
    assert all(torch.equal(a, b) for a, b in zip(one, two))
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
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
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
    err = capsys.readouterr().err
    assert "training" in err and "5/5" in err and "loss=" in err


def test_model_and_batches_follow_the_device():
    device = torch.device("cuda") if torch.cuda.is_available() else CPU
    model = nn.Linear(2, 3)
    train(model, blobs(), dataclasses.replace(QUIET, epochs=1), blobs(), device=device)
    assert next(model.parameters()).device.type == device.type
    assert evaluate(model, blobs())["accuracy"] >= 0
