"""dlbook.contrastive: NT-Xent against two independent formulations, augmentations, subsets."""

import pytest
import torch
import torch.nn.functional as F

from dlbook.contrastive import Classifier, Encoder, augment, label_subset, nt_xent


def _loop_nt_xent(z1, z2, tau):
    """The paper's l(i, j) summed over both orders of every pair, one term at a time."""
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    n2 = len(u)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denominator = sum(torch.exp(u[i] @ u[k] / tau) for k in range(n2) if k != i)
        total = total - torch.log(torch.exp(u[i] @ u[j] / tau) / denominator)
    return total / n2


def test_nt_xent_matches_a_loop_and_cross_entropy_over_similarities():
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    z2 = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    for tau in (0.1, 0.5, 2.0):
        loss = nt_xent(z1, z2, tau)
        torch.testing.assert_close(loss, _loop_nt_xent(z1, z2, tau))
        # cross-entropy over each row of the similarity matrix, the diagonal removed
        u = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = (u @ u.T / tau) - torch.eye(12, dtype=torch.float64) * 1e9
        target = torch.cat([torch.arange(6, 12), torch.arange(0, 6)])
        torch.testing.assert_close(loss, F.cross_entropy(sim, target))


def test_nt_xent_bounds():
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    # identical views of well-separated points: the positive term dominates as tau -> 0
    assert nt_xent(z, z, 0.05) < nt_xent(z, z.roll(1, 0), 0.05)
    # all vectors equal (collapse): every view's 2N - 1 candidates tie, loss log(2N - 1)
    same = torch.ones(8, 4)
    torch.testing.assert_close(nt_xent(same, same, 0.5), torch.log(torch.tensor(15.0)))


def test_augment_keeps_shape_range_and_is_repeatable():
    x = torch.rand(5, 64)
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    ident = augment(x, torch.Generator().manual_seed(0), max_degrees=0, max_shift=0,
                    scale=(1.0, 1.0), noise=0.0)
    torch.testing.assert_close(ident, x, atol=1e-5, rtol=0)


def test_label_subset_is_stratified():
    y = torch.arange(10).repeat(30)
    idx = label_subset(y, 0.1, seed=0)
    assert len(idx) == 30 and torch.bincount(y[idx]).tolist() == [3] * 10
    assert torch.bincount(y[label_subset(y, 0.001, seed=0)]).tolist() == [1] * 10


def test_probe_trains_only_the_head():
    probe = Classifier(Encoder(), freeze=True)
    assert [n for n, p in probe.named_parameters() if p.requires_grad] == ["head.weight",
                                                                           "head.bias"]
    assert probe(torch.rand(3, 64)).shape == (3, 10)


def test_bad_inputs():
    with pytest.raises(ValueError, match="z1"):
        nt_xent(torch.zeros(4, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.zeros(4, 3), torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match="x must be digits"):
        augment(torch.zeros(3, 10), torch.Generator())
    with pytest.raises(ValueError, match="fraction"):
        label_subset(torch.zeros(3, dtype=torch.long), 0.0, 0)
