"""dlbook.distill: the softened loss against a direct formula, the T^2 gradient scale, errors."""

import pytest
import torch
import torch.nn.functional as F

from dlbook.distill import distillation_loss, soft_targets


def test_soft_targets_flatten_with_temperature():
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    torch.testing.assert_close(soft_targets(logits, 1.0), logits.softmax(-1))
    entropy = [-(p * p.log()).sum().item() for p in
               (soft_targets(logits, t)[0] for t in (1.0, 2.0, 8.0))]
    assert entropy[0] < entropy[1] < entropy[2] < torch.log(torch.tensor(3.0)).item()


def test_loss_is_cross_entropy_with_soft_targets_minus_teacher_entropy():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, 4, generator=gen,
                                                                              dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    T = 3.0
    p = (t / T).softmax(-1)
    ce_soft = -(p * (s / T).log_softmax(-1)).sum(-1).mean()
    entropy = -(p * p.log()).sum(-1).mean()
    expected = 0.7 * T**2 * (ce_soft - entropy) + 0.3 * F.cross_entropy(s, y)
    torch.testing.assert_close(distillation_loss(s, t, y, T, alpha=0.7), expected)


def test_t_squared_keeps_the_gradient_scale():
    # for large T the gradient of the soft term tends to (z_s - z_t) / (C T^2) before the
    # T^2 factor (Hinton et al., eq. 3 with zero-mean logits), so with the factor it tends to
    # (z_s - z_t) / C, the same at every large T
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(1, 6, generator=gen, dtype=torch.float64)
    t -= t.mean()
    s = torch.randn(1, 6, generator=gen, dtype=torch.float64)
    s -= s.mean()
    grads = []
    for T in (20.0, 200.0):
        s_ = s.clone().requires_grad_()
        distillation_loss(s_, t, None, T, alpha=1.0).backward()
        grads.append(s_.grad)
    limit = (s - t) / 6
    torch.testing.assert_close(grads[1], limit, atol=0, rtol=1e-2)  # error O(1/T)
    torch.testing.assert_close(grads[0], limit, atol=0, rtol=1e-1)
    # without the factor the gradient would shrink 100-fold from T = 20 to T = 200
    assert (grads[0] / 20**2).abs().max() > 50 * (grads[1] / 200**2).abs().max()


def test_bad_inputs():
    with pytest.raises(ValueError, match="student_logits"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        soft_targets(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), None, 2.0, alpha=0.5)
