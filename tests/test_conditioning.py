"""Tests of dlbook.conditioning, the label and noise helpers that the VAE, GAN and flow
share, and the batch unpacking and training call of the VAE and the flow."""

import pytest
import torch
import torch.nn.functional as F

from dlbook.conditioning import base_noise, fit_tensors, labelled_batch, one_hot_labels
from dlbook.train import TrainConfig, epochs_of, fit
from dlbook.utils import make_generator


def test_one_hot_labels_match_torch_and_check_the_model_kind():
    y = torch.tensor([3, 0, 9])
    torch.testing.assert_close(one_hot_labels(y, 10, 3, "GAN"), F.one_hot(y, 10).float())
    assert one_hot_labels(None, 0, 3, "GAN") is None
    with pytest.raises(ValueError, match="unconditional"):
        one_hot_labels(y, 0, 3, "flow")
    with pytest.raises(ValueError, match=r"labels y of shape \(4,\), got \(3,\)"):
        one_hot_labels(y, 10, 4, "VAE")
    with pytest.raises(ValueError, match="got None"):
        one_hot_labels(None, 10, 3, "VAE")


def test_base_noise_is_the_seeded_standard_normal():
    noise = base_noise(5, 3, torch.Generator().manual_seed(1), torch.device("cpu"))
    torch.testing.assert_close(
        noise, torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    )
    with pytest.raises(ValueError, match="n"):
        base_noise(0, 3, None, torch.device("cpu"))


class _Tiny(torch.nn.Module):
    """A linear model with the ``config.n_classes`` that the helpers read."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.config = type("Config", (), {"n_classes": n_classes})()
        self.linear = torch.nn.Linear(3, 1)


def _loss(model, batch):
    x, _ = labelled_batch(model, batch)
    return model.linear(x).pow(2).mean()


def test_labelled_batch_keeps_the_labels_only_for_a_conditional_model():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    got_x, got_y = labelled_batch(_Tiny(10), (x, y))
    assert got_x is x and torch.equal(got_y, y)
    assert labelled_batch(_Tiny(0), (x, y))[1] is None
    assert labelled_batch(_Tiny(10), (x,))[1] is None


def test_fit_tensors_is_fit_on_seeded_shuffled_epochs_and_leaves_eval_mode():
    x, y = torch.randn(20, 3), torch.arange(20) % 4
    config = TrainConfig(steps=7, batch_size=6, lr=0.1, progress=False, seed=2)
    torch.manual_seed(0)
    model = _Tiny(4)
    history = fit_tensors(model, x, y, _loss, config, desc="test")
    torch.manual_seed(0)
    reference = _Tiny(4)
    data = torch.utils.data.TensorDataset(x, y)
    batches = epochs_of(data, 6, None, make_generator(2))
    expected = fit(reference, batches, _loss, config)
    assert history.step_loss == expected.step_loss and len(history.step_loss) == 7
    assert not model.training
    with pytest.raises(ValueError, match="TrainConfig with steps set"):
        fit_tensors(model, x, None, _loss, TrainConfig(steps=None, epochs=1), "test")
