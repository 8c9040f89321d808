"""jaxdiff.visualize: grid geometry, PNG/GIF output and atomic writes."""
import os

import numpy as np
import pytest
from PIL import Image

from jaxdiff import visualize as V


def test_to_uint8_mapping():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 2.0, np.nan])
    np.testing.assert_array_equal(V.to_uint8(x), [0, 64, 128, 191, 255, 0, 255, 0])
    np.testing.assert_array_equal(V.to_uint8(np.array([0.0, 0.5, 1.0]), in_range=(0, 1)), [0, 128, 255])
    u8 = np.arange(5, dtype=np.uint8)
    assert V.to_uint8(u8) is u8


def test_make_grid_places_tiles_at_their_offsets():
    rng = np.random.default_rng(0)
    n, h, w = 5, 4, 6
    x = rng.uniform(-1, 1, (n, h, w, 1))
    g = V.make_grid(x, nrow=3, padding=2, pad_value=77)
    assert g.dtype == np.uint8 and g.shape == (2 * (h + 2) + 2, 3 * (w + 2) + 2, 1)
    tiles = V.to_uint8(x)
    for i in range(n):
        r, c = divmod(i, 3)
        y0, x0 = 2 + r * (h + 2), 2 + c * (w + 2)
        np.testing.assert_array_equal(g[y0 : y0 + h, x0 : x0 + w], tiles[i])
    # Everything that is not a tile is padding, including the empty 6th cell.
    mask = np.ones(g.shape[:2], bool)
    for i in range(n):
        r, c = divmod(i, 3)
        mask[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + c * (w + 2) : 2 + c * (w + 2) + w] = False
    assert np.all(g[mask] == 77)
    # Default nrow = ceil(sqrt(N)); RGB keeps 3 channels; (N, H, W) is grey.
    assert V.make_grid(rng.uniform(-1, 1, (10, 8, 8, 3)), padding=0).shape == (3 * 8, 4 * 8, 3)
    assert V.make_grid(rng.uniform(-1, 1, (4, 8, 8)), padding=1).shape == (2 * 9 + 1, 2 * 9 + 1, 1)


def test_make_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="channels"):
        V.make_grid(np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="nrow"):
        V.make_grid(np.zeros((2, 4, 4, 1)), nrow=0)
    with pytest.raises(ValueError, match="pad_value"):
        V.make_grid(np.zeros((2, 4, 4, 1)), pad_value=300)


def test_save_grid_writes_nearest_upscaled_png(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (6, 16, 16, 1)).astype(np.float32)
    p = V.save_grid(tmp_path / "sub" / "grid.png", x, nrow=3, upscale=3)
    img = Image.open(p)
    assert img.format == "PNG" and img.mode == "L"
    g = V.make_grid(x, nrow=3)
    np.testing.assert_array_equal(np.asarray(img), np.repeat(np.repeat(g[..., 0], 3, 0), 3, 1))
    # Automatic upscale: 16-pixel tiles become 64 pixels; RGB stays RGB.
    p2 = V.save_grid(tmp_path / "rgb.png", rng.uniform(-1, 1, (4, 16, 16, 3)))
    img2 = Image.open(p2)
    assert img2.mode == "RGB" and img2.size == (4 * (2 * 18 + 2), 4 * (2 * 18 + 2))
    assert sorted(os.listdir(tmp_path)) == ["rgb.png", "sub"]


def test_save_strip_rows_and_labels(tmp_path):
    rng = np.random.default_rng(2)
    rows = [rng.uniform(-1, 1, (4, 16, 16, 1)) for _ in range(3)] + [rng.uniform(-1, 1, (2, 16, 16, 1))]
    plain = Image.open(V.save_strip(tmp_path / "a.png", rows, upscale=2))
    w_tiles, h_tiles = 2 * (4 * 18 + 2), 2 * (4 * 18 + 2)
    assert plain.size == (w_tiles, h_tiles)
    labelled = Image.open(
        V.save_strip(tmp_path / "b.png", rows, ["degraded", "direct", "sampled", "original"], upscale=2,
                     column_labels=["0", "1", "2", "3"])
    )
    assert labelled.width > w_tiles and labelled.height > h_tiles
    arr = np.asarray(labelled)
    left = labelled.width - w_tiles
    top = labelled.height - h_tiles
    # The image block sits unchanged at the bottom right; the label margin carries dark text on grey.
    np.testing.assert_array_equal(arr[top:, left:], np.asarray(plain))
    assert (arr[top:, :left] < 64).any() and (arr[:top, left:] < 64).any()
    with pytest.raises(ValueError, match="labels has 2 entries for 4 rows"):
        V.save_strip(tmp_path / "c.png", rows, ["x", "y"])
    with pytest.raises(ValueError, match="same \\(H, W, C\\)"):
        V.save_strip(tmp_path / "c.png", [rows[0], rng.uniform(-1, 1, (2, 8, 8, 1))])


def test_save_trajectory_png_and_gif(tmp_path):
    rng = np.random.default_rng(3)
    M_, B, h = 5, 3, 16
    xt = rng.uniform(-1, 1, (M_, B, h, h, 1))
    x0 = np.broadcast_to(rng.uniform(-1, 1, (1, B, h, h, 1)), xt.shape)
    ts = [20, 15, 10, 5, 0]
    png, gif = V.save_trajectory(tmp_path / "traj.png", tmp_path / "traj.gif", xt, x0, ts, upscale=1, max_examples=2)
    img = Image.open(png)
    assert img.mode == "L"
    grid_h, grid_w = 2 * 2 * (h + 2) + 2, M_ * (h + 2) + 2  # two rows per example, two examples
    assert img.height > grid_h and img.width > grid_w  # plus the t= header and row labels
    arr = np.asarray(img)
    top, left = img.height - grid_h, img.width - grid_w
    # Row 2k is example k's x_t, row 2k+1 its x̂0; column m is step m.
    u8t, u8h = V.to_uint8(xt), V.to_uint8(x0)
    for b in range(2):
        for m in range(M_):
            y0, c0 = top + 2 + 2 * b * (h + 2), left + 2 + m * (h + 2)
            np.testing.assert_array_equal(arr[y0 : y0 + h, c0 : c0 + h], u8t[m, b, ..., 0])
            y1 = y0 + h + 2
            np.testing.assert_array_equal(arr[y1 : y1 + h, c0 : c0 + h], u8h[m, b, ..., 0])
    g = Image.open(gif)
    assert g.format == "GIF" and g.n_frames == M_
    assert g.info.get("loop") == 0
    sizes = set()
    for m in range(M_):
        g.seek(m)
        sizes.add(g.size)
    assert len(sizes) == 1
    # A run that does not change at all still gives one frame per step (Pillow merges identical frames;
    # the step counter in each frame's title prevents it).
    still = np.zeros((M_, B, h, h, 1))
    _, gif2 = V.save_trajectory(None, tmp_path / "still.gif", still, still, [3] * M_)
    assert Image.open(gif2).n_frames == M_
    assert sorted(os.listdir(tmp_path)) == ["still.gif", "traj.gif", "traj.png"]
    with pytest.raises(ValueError, match="ts has 4 entries"):
        V.save_trajectory(tmp_path / "x.png", None, xt, x0, ts[:4])


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    x = np.zeros((2, 16, 16, 1))
    target = tmp_path / "grid.png"
    V.save_grid(target, x, upscale=1)
    before = target.read_bytes()
    assert os.listdir(tmp_path) == ["grid.png"]

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"half a picture")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        V.save_grid(target, np.ones((2, 16, 16, 1)), upscale=1)
    with pytest.raises(RuntimeError, match="disk full"):
        V.save_trajectory(None, tmp_path / "t.gif", np.zeros((2, 1, 16, 16, 1)), np.zeros((2, 1, 16, 16, 1)), [1, 0])
    assert os.listdir(tmp_path) == ["grid.png"]
    assert target.read_bytes() == before
