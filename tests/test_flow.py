"""Tests of dlbook.flow: log-determinants against torch.autograd.functional.jacobian, exact
inverses, and a density that integrates to one."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from dlbook.flow import (
    AffineCoupling,
    FlowConfig,
    RealNVP,
    dequantize,
    logit_inverse,
    logit_transform,
    make_mask,
    train_flow,
)


def _random_flow(config, seed=0):
    torch.manual_seed(seed)
    flow = RealNVP(config).double()
    with torch.no_grad():  # move away from the identity start
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("n_classes", [0, 3])
def test_log_det_matches_autograd_jacobian(n_classes):
    flow = _random_flow(FlowConfig(dim=4, n_layers=3, hidden=16, n_classes=n_classes))
    x = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 2, 1]) if n_classes else None
    _, log_det = flow(x, y)
    for i in range(3):
        yi = None if y is None else y[i:i + 1]
        J = jacobian(lambda v, yi=yi: flow(v.unsqueeze(0), yi)[0].squeeze(0), x[i])  # (4, 4)
        torch.testing.assert_close(log_det[i], torch.linalg.slogdet(J).logabsdet)


def test_coupling_keeps_masked_coordinates_and_inverts():
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    layer = AffineCoupling(mask, 8).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(5, 4, dtype=torch.float64)
    out, _ = layer(x)
    torch.testing.assert_close(out[:, mask.bool()], x[:, mask.bool()])
    torch.testing.assert_close(layer.inverse(out), x)


def test_inverse_undoes_forward():
    flow = _random_flow(FlowConfig(dim=64, n_layers=4, hidden=16, mask="checkerboard"))
    x = torch.randn(6, 64, dtype=torch.float64)
    torch.testing.assert_close(flow.inverse(flow(x)[0]), x)


def test_density_integrates_to_one():
    flow = _random_flow(FlowConfig(dim=2, n_layers=4, hidden=16), seed=1)
    side = torch.linspace(-12, 12, 801, dtype=torch.float64)
    grid = torch.cartesian_prod(side, side)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum() * (side[1] - side[0]) ** 2
    assert abs(mass.item() - 1) < 0.01


def test_logit_transform_log_det_and_inverse():
    x = torch.tensor([0.1, 0.5, 0.93], dtype=torch.float64)
    u, log_det = logit_transform(x.unsqueeze(0))
    J = jacobian(lambda v: logit_transform(v.unsqueeze(0))[0].squeeze(0), x)
    torch.testing.assert_close(log_det[0], torch.linalg.slogdet(J).logabsdet)
    torch.testing.assert_close(logit_inverse(u)[0], x)


def test_checkerboard_mask_alternates_neighbours():
    mask = make_mask(FlowConfig(dim=16, mask="checkerboard"), 0).view(4, 4)
    assert (mask[:, 1:] != mask[:, :-1]).all() and (mask[1:] != mask[:-1]).all()
    assert (make_mask(FlowConfig(dim=16, mask="checkerboard"), 1).view(4, 4) == 1 - mask).all()


def test_dequantize_stays_in_its_bin():
    levels = torch.randint(0, 17, (100, 64))
    x = dequantize(levels, 17, torch.Generator().manual_seed(0))
    assert ((x * 17).floor() == levels).all()


def test_training_lowers_the_nll():
    torch.manual_seed(0)
    x = torch.randn(256, 2) * torch.tensor([2.0, 0.3]) + 1
    flow = RealNVP(FlowConfig(dim=2, n_layers=4, hidden=16))
    before = -flow.log_prob(x).mean().item()
    from dlbook.train import TrainConfig
    train_flow(flow, x, TrainConfig(steps=150, batch_size=128, lr=1e-2, progress=False))
    after = -flow.log_prob(x).mean().item()
    assert after < before - 0.5
    # a Gaussian fit is the best a flow can do here: 0.5 log det(2 pi e Sigma)
    gaussian = 0.5 * math.log((2 * math.pi * math.e) ** 2 * 4.0 * 0.09)
    assert after > gaussian - 0.1


def test_bad_inputs():
    with pytest.raises(ValueError, match="mask"):
        FlowConfig(mask="stripes")
    with pytest.raises(ValueError, match="square"):
        FlowConfig(dim=10, mask="checkerboard")
    with pytest.raises(ValueError, match="labels"):
        RealNVP(FlowConfig(n_classes=2))(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="alpha"):
        logit_transform(torch.zeros(1, 2), alpha=0.5)
    with pytest.raises(TypeError, match="FlowConfig"):
        RealNVP({"dim": 2})
