"""dlbook.plot.tile_picture and show_tiles: tiles land where they should, bad input is refused."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dlbook.plot import show_tiles, tile_picture  # noqa: E402


def test_tile_picture_places_each_image_with_a_gap():
    images = torch.arange(6, dtype=torch.float32).view(6, 1, 1, 1).expand(6, 1, 2, 3) / 10
    picture = tile_picture(images, cols=3)
    assert picture.shape == (2 * 3 - 1, 3 * 4 - 1)
    for i in range(6):
        r, c = divmod(i, 3)
        assert torch.all(picture[3 * r:3 * r + 2, 4 * c:4 * c + 3] == i / 10)
    assert torch.isnan(picture[2]).all() and torch.isnan(picture[:, 3]).all()


def test_tile_picture_clamps_and_checks():
    clamped = tile_picture(torch.full((2, 1, 2, 2), 5.0), cols=2, limit=1.5)
    assert clamped.nan_to_num(0.0).max() == 1.5
    with pytest.raises(ValueError, match="rows"):
        tile_picture(torch.zeros(5, 1, 2, 2), cols=2)


def test_show_tiles_titles():
    fig = show_tiles(torch.zeros(4, 1, 8, 8), ["a", "b"], row_titles=["x", "y"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    with pytest.raises(ValueError, match="row_titles"):
        show_tiles(torch.zeros(4, 1, 8, 8), ["a", "b"], row_titles=["x"])
    plt.close("all")
