"""Tests of dlbook.conditioning, the label and noise helpers that the VAE, GAN and flow
share."""

import pytest
import torch
import torch.nn.functional as F

from dlbook.conditioning import base_noise, one_hot_labels


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
