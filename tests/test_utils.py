"""The shared helpers: device choice, seeding, showing source."""

import random

import numpy as np
import pytest
import torch

from dlbook.utils import get_device, set_seed, show_source


def test_get_device_defaults_to_cuda_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected


def test_get_device_honours_a_request(monkeypatch):
    assert get_device("cpu").type == "cpu"
    monkeypatch.setenv("DLBOOK_DEVICE", "cpu")
    assert get_device().type == "cpu"


def test_get_device_refuses_nonsense():
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'mps'"):
        get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_device("cuda")


def test_set_seed_makes_every_generator_repeat():
    set_seed(123)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_seed(123)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_set_seed_refuses_bad_seeds(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        set_seed(bad)


def test_show_source_returns_the_code():
    code = show_source(set_seed)
    assert "def set_seed" in code.data
    with pytest.raises(TypeError, match="function, method or class"):
        show_source(42)


def test_glue_checks_its_name_and_runs_outside_a_notebook():
    from dlbook.utils import glue

    glue("accuracy", 0.5)  # outside Jupyter this records nothing, and must not fail
    with pytest.raises(ValueError, match="identifier"):
        glue("not a name", 1.0)


def test_glue_turns_numpy_and_torch_scalars_into_python_numbers(monkeypatch):
    import myst_nb

    from dlbook.utils import glue

    seen = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display: seen.update({name: value}))
    glue("a", np.float64(0.25))
    glue("b", torch.tensor(3))
    assert seen == {"a": 0.25, "b": 3} and type(seen["a"]) is float and type(seen["b"]) is int
