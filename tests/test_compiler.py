"""dlbook.compiler: compiled functions and training steps equal eager PyTorch."""

import pytest
import torch
from torch import nn

from dlbook import compiler as dcompile
from dlbook.ddp import ToyTask


def test_gelu_tanh_is_pytorchs_gelu():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 4
    expected = nn.functional.gelu(x, approximate="tanh")
    torch.testing.assert_close(dcompile.gelu_tanh(x), expected, rtol=1e-6, atol=1e-6)


def test_compiled_gelu_is_one_fused_kernel_equal_to_eager():
    x = torch.randn(4096, generator=torch.Generator().manual_seed(1))
    result = dcompile.compare_compiled(dcompile.gelu_tanh, x, repeats=2)
    assert result.max_abs_diff < 1e-6
    assert len(dcompile.kernel_names(result.code)) == 1, result.code
    body = dcompile.kernel_loop_body(result.code)
    assert body and "tanh()" in "".join(body) and ".store(" in body[-1]
    assert result.first_call_s > 0 and result.eager_s > 0 and result.compiled_s > 0


def test_data_dependent_branch_breaks_the_graph():
    x = torch.randn(64, generator=torch.Generator().manual_seed(2))
    report = dcompile.graph_report(dcompile.normalize_if_large, x)
    assert (report.graphs, report.breaks) == (2, 1), report
    assert len(report.reasons) == 1
    assert dcompile.graph_report(dcompile.gelu_tanh, x).breaks == 0
    # the branch is taken as eager Python would: the compiled function agrees both ways
    compiled = torch.compile(dcompile.normalize_if_large)
    for scale in (0.001, 100.0):
        torch.testing.assert_close(
            compiled(x * scale), dcompile.normalize_if_large(x * scale)
        )


def test_compiled_training_steps_match_eager():
    task = ToyTask(hidden=64)
    torch.manual_seed(0)
    model = task.build_model()
    x, y = task.dataset().tensors
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 192, 64)]
    before = [p.clone() for p in model.parameters()]
    result = dcompile.compare_training(model, task.loss, batches, lr=1e-2)
    assert len(result.compiled_loss) == 3
    torch.testing.assert_close(
        torch.tensor(result.compiled_loss), torch.tensor(result.eager_loss),
        rtol=1e-5, atol=1e-6,
    )
    assert result.eager_loss[-1] < result.eager_loss[0]  # the steps did train
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_errors():
    with pytest.raises(TypeError, match="fn must be callable"):
        dcompile.graph_report(3, torch.zeros(1))
    with pytest.raises(ValueError, match="at least 2"):
        dcompile.compare_training(nn.Linear(1, 1), lambda m, b: m(b[0]).sum(), [])
