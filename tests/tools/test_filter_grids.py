"""`kerasapps diagnose filters|features`: PNG grids of the expected size, small kernels drawn as flat blocks with
separators and a colour scale, filter statistics, one-line errors."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import kerasapps
from kerasapps.cli.main import cli
from kerasapps.core.errors import ConfigError
from kerasapps.tools.filter_grids import (
    LEGEND_HEIGHT,
    LEGEND_WIDTH,
    PAD,
    SEPARATOR,
    colour_table,
    filter_statistics,
    filter_tiles,
    pick_conv_layer,
    write_grid,
)


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)), catch_exceptions=False)


def run_json(*args):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def expected_size(count, tile_h, tile_w, scale):
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    width, height = cols * (tile_w * scale + PAD) + PAD, rows * (tile_h * scale + PAD) + PAD
    return max(width, LEGEND_WIDTH), height + LEGEND_HEIGHT  # PIL: (width, height), the colour scale under the grid


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory, tiny_data_dir):
    folder = tmp_path_factory.mktemp("pictures")
    run_dir = folder / "run"
    kerasapps.train("lenet5_mnist", run_dir=run_dir, data_dir=tiny_data_dir, smoke=True, verbose=0)
    images = np.load(tiny_data_dir / "mnist" / "mnist.npz")["x_test"]
    Image.fromarray(images[0]).save(folder / "digit.png")
    np.save(folder / "digits.npy", images[:3])
    return run_dir, folder


def test_filter_statistics_on_hand_made_filters():
    a = np.array([1.0, -1.0, 2.0, 0.0])
    b = np.array([0.0, 1.0, 0.0, -1.0])
    kernel = np.stack([a, 3 * a, b, np.full(4, 0.7)], axis=-1).reshape(2, 2, 1, 4)
    stats = filter_statistics(kernel)
    assert stats["filters"] == 4 and stats["filter_size"] == 4
    assert stats["norms"] == pytest.approx([np.sqrt(6), 3 * np.sqrt(6), np.sqrt(2), 1.4], abs=1e-6)
    assert stats["constant_filters"] == [3] and stats["pairs"] == 3
    r_ab = np.corrcoef(a, b)[0, 1]
    assert stats["max_abs_correlation"] == pytest.approx(1.0) and stats["most_correlated_pair"] == [0, 1]
    assert stats["mean_abs_correlation"] == pytest.approx((1 + 2 * abs(r_ab)) / 3)


def test_rgb_filters_draw_in_colour_at_the_computed_size(tmp_path):
    kernel = np.random.default_rng(0).normal(size=(3, 3, 3, 10))
    tiles, mode = filter_tiles(kernel)
    grid = write_grid(tiles, tmp_path / "rgb.png")
    with Image.open(tmp_path / "rgb.png") as image:
        assert mode == "rgb" and image.mode == "RGB"
        assert image.size == expected_size(10, 3, 3, grid["scale"]) == (grid["width"], grid["height"])
    assert (grid["rows"], grid["cols"]) == (3, 4) and grid["scale"] * 3 >= 32


def test_a_3x3_kernel_is_drawn_as_flat_blocks_with_separators_and_a_colour_scale(tmp_path):
    """Nearest-neighbour blocks (no smoothing), separator-coloured gaps, one shared diverging scale with a legend."""
    weights = np.array([[-1.0, 0.0, 1.0], [0.5, -0.5, 0.25], [0.0, 1.0, -1.0]])
    kernel = np.stack([weights, -weights, 0.5 * weights, np.zeros((3, 3))], axis=-1)[:, :, None, :]  # [3, 3, 1, 4]
    tiles, mode = filter_tiles(kernel)
    grid = write_grid(tiles, tmp_path / "grey.png", label="weight")
    scale = grid["scale"]
    assert mode == "grey" and scale >= 16 and grid["tile"] == [3 * scale, 3 * scale]  # 3 pixels -> 48 and more
    assert grid["value_range"] == [-1.0, 1.0]  # one scale, symmetric about 0, for every filter
    with Image.open(tmp_path / "grey.png") as image:
        assert image.size == expected_size(4, 3, 3, scale) == (grid["width"], grid["height"])
        pixels = np.asarray(image.convert("RGB"))
    table = colour_table("RdBu_r")
    step = 3 * scale + PAD
    for index in range(4):
        top, left = PAD + (index // 2) * step, PAD + (index % 2) * step
        tile = pixels[top:top + 3 * scale, left:left + 3 * scale].reshape(3, scale, 3, scale, 3)
        assert (tile == tile[:, :1, :, :1]).all(), "each weight is one flat block"
        level = np.round((kernel[:, :, 0, index] + 1.0) / 2.0 * 255).astype(int)
        assert (tile[:, 0, :, 0] == table[level]).all()
    red, blue = pixels[PAD, PAD + 2 * scale], pixels[PAD, PAD]  # weights +1 and -1 of the first filter
    assert red[0] > red[2] + 50 and blue[2] > blue[0] + 50  # positive red, negative blue
    assert (pixels[PAD, PAD + scale] > 240).all()  # and 0 white
    grid_width, grid_height = grid["grid"]
    gaps = [pixels[:grid_height, :PAD], pixels[:PAD, :grid_width], pixels[:grid_height, step:step + PAD],
            pixels[step:step + PAD, :grid_width], pixels[:grid_height, grid_width:]]
    assert all((gap == SEPARATOR).all() for gap in gaps)
    legend = pixels[grid_height:]
    bar = legend[2, PAD:grid["width"] - PAD]
    assert (bar[0] == table[0]).all() and (bar[-1] == table[255]).all()  # the scale runs from -1 to +1
    assert ((legend[12:] != SEPARATOR).any(axis=-1).sum()) > 50  # its labels are written under it


def test_filters_png_and_statistics_of_a_run(lenet_run):
    run_dir, _ = lenet_run
    result = run_json("diagnose", "filters", run_dir)
    png = run_dir / "diagnostics" / "filters.png"
    assert result["png"] == str(png) and result["layer"] == "block1_conv"
    with Image.open(png) as image:  # LeNet-5's C1: six 5x5 filters -> 2 rows x 3 columns
        assert image.size == expected_size(6, 5, 5, result["scale"]) and image.mode == "RGB"
    stats = result["statistics"]
    assert stats["kernel_shape"] == [5, 5, 1, 6] and len(stats["norms"]) == 6 and stats["pairs"] == 15
    assert 0 < stats["mean_abs_correlation"] <= stats["max_abs_correlation"] <= 1
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    kernel = model.get_layer("block1_conv").kernel.numpy()
    assert stats["norms"] == pytest.approx(np.linalg.norm(kernel.reshape(25, 6), axis=0), abs=1e-5)

    deeper = run_json("diagnose", "filters", run_dir, "--layer", "block2_conv")
    assert deeper["statistics"]["kernel_shape"] == [5, 5, 6, 16] and deeper["drawn_as"] == "mean of 6 input channels"
    with Image.open(run_dir / "diagnostics" / "filters-block2_conv.png") as image:
        assert image.size == expected_size(16, 5, 5, deeper["scale"])


def test_feature_maps_from_a_png_and_a_npy(lenet_run):
    run_dir, folder = lenet_run
    first = run_json("diagnose", "features", run_dir, "--input", folder / "digit.png")
    assert first["map_shape"] == [28, 28, 6] and first["statistics"]["maps"] == 6  # 32x32 padded input, 5x5 valid
    with Image.open(first["png"]) as image:
        assert image.size == expected_size(6, 28, 28, first["scale"])
    pooled = run_json("diagnose", "features", run_dir, "--input", folder / "digits.npy", "--layer", "block2_pool",
                      "--png", folder / "pool.png")
    assert pooled["map_shape"] == [5, 5, 16] and pooled["input"].endswith("digits.npy[0]")
    assert len(pooled["statistics"]["mean"]) == 16
    with Image.open(folder / "pool.png") as image:
        assert image.size == expected_size(16, 5, 5, pooled["scale"])


def test_bad_layer_and_bad_input_are_one_line_errors(lenet_run, tmp_path):
    run_dir, folder = lenet_run
    for args in (("filters", run_dir, "--layer", "nope"), ("features", run_dir, "--input", folder / "digit.png",
                                                           "--layer", "fc1")):
        result = invoke("diagnose", *args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ") and "conv layers: block1_conv, block2_conv, block3_conv" in lines[0]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    result = invoke("diagnose", "features", run_dir, "--input", tmp_path / "small.png")
    assert result.exit_code == 2 and "28x28" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    inputs = keras.Input((4,))
    dense = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="dense_only")
    with pytest.raises(ConfigError, match="'dense_only' has no convolutional layer"):
        pick_conv_layer(dense)
