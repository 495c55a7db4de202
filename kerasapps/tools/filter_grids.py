"""Pictures of what a network learned: convolution filters and feature maps, with statistics.

The visual checks of CS231n's "Visualizing what ConvNets learn" (and Zeiler & Fergus 2014): the
first layer's filters of a well-trained network look like smooth oriented edges and colour blobs
(noisy, speckled filters hint at too little regularisation or training), and different filters
should be *uncorrelated* (several nearly identical filters waste capacity). ``filter_statistics`` measures that: the
L2 norm of each filter and the Pearson correlation between every pair of flattened filters.

    from kerasapps.tools.filter_grids import filters_picture, features_picture
    filters_picture("runs/lenet")                       # RUN_DIR/diagnostics/filters.png
    features_picture("runs/lenet", "digit.png", layer="block2_conv")

Grids are written with PIL at an exact size: ``cols = ceil(sqrt(n))`` tiles across,
``rows = ceil(n / cols)`` down, each tile ``scale`` times the filter or map size (nearest
neighbour: a 3x3 kernel is nine flat blocks, never smoothed), ``PAD`` pixels of the
``SEPARATOR`` colour between and around tiles, and under the grid a colour scale: a bar from the
lowest to the highest value with both written at its ends. All tiles share that one scale, so
filters and maps compare with each other: filters on a diverging map centred on 0 (blue negative,
white 0, red positive; 3-channel filters as colour with grey at 0), feature maps on viridis from
their lowest to their highest activation.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.core.errors import ConfigError, UsageError
from kerasapps.models.walk import iter_layers

PAD = 3  # separator pixels between and around the tiles
MIN_TILE = 48  # small filters (3x3, 5x5) are scaled up to at least this many pixels
SEPARATOR = (64, 64, 64)  # dark grey, on neither colour map
LEGEND_HEIGHT = 30  # the colour scale under the grid: a bar and its value labels
LEGEND_WIDTH = 180  # narrower grids are widened to this for the labels
TEXT = (255, 255, 255)
WEIGHT_MAP, ACTIVATION_MAP = "RdBu_r", "viridis"
CONV_CLASSES = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")


def conv_layers(model) -> list:
    """The convolution layers of ``model`` in order (those with a ``kernel`` of rank >= 3)."""
    return [layer for layer in iter_layers(model)
            if type(layer).__name__ in CONV_CLASSES and getattr(layer, "kernel", None) is not None]


def _conv_names(model) -> str:
    return ", ".join(layer.name for layer in conv_layers(model)) or "none"


def pick_conv_layer(model, name: str | None = None):
    """The layer named ``name`` (a convolution), or the first convolution; one-line errors otherwise."""
    convs = conv_layers(model)
    if not convs:
        raise ConfigError(f"model {model.name!r} has no convolutional layer; filters need a Conv layer")
    if name is None:
        return convs[0]
    for layer in convs:
        if layer.name == name:
            return layer
    raise ConfigError(f"no convolutional layer {name!r} in model {model.name!r}; conv layers: {_conv_names(model)}")


def _feature_layer(model, name: str | None):
    if name is None:
        return pick_conv_layer(model)
    for layer in iter_layers(model):
        if layer.name == name:
            shape = getattr(layer, "output", None)
            shape = tuple(shape.shape) if shape is not None else ()
            if len(shape) != 4:
                raise ConfigError(f"layer {name!r} of {model.name!r} has output shape {list(shape)}, not "
                                  f"[N, H, W, C] feature maps; conv layers: {_conv_names(model)}")
            return layer
    raise ConfigError(f"no layer {name!r} in model {model.name!r}; conv layers: {_conv_names(model)}")


def filter_matrix(kernel) -> np.ndarray:
    """Kernel ``[..., in, out]`` -> one row per filter, ``[out, prod(...) * in]`` float64."""
    kernel = np.asarray(kernel, np.float64)
    return kernel.reshape(-1, kernel.shape[-1]).T


def filter_statistics(kernel) -> dict:
    """Per-filter L2 norm and the pairwise Pearson correlation of the flattened filters.

    ``mean_abs_correlation`` averages |r| over all pairs i < j, ``max_abs_correlation`` is the
    largest |r| with its pair; constant filters (zero variance) have no correlation and are
    listed in ``constant_filters`` instead of counted.
    """
    rows = filter_matrix(kernel)
    count = rows.shape[0]
    norms = np.linalg.norm(rows, axis=1)
    centred = rows - rows.mean(axis=1, keepdims=True)
    spread = np.linalg.norm(centred, axis=1)
    constant = [int(i) for i in np.flatnonzero(spread <= 1e-12 * max(1.0, float(spread.max(initial=0.0))))]
    valid = np.setdiff1d(np.arange(count), constant)
    out: dict[str, Any] = {"filters": count, "filter_size": int(rows.shape[1]), "kernel_shape": list(np.shape(kernel)),
                           "norms": [round(float(v), 6) for v in norms],
                           "norm_mean": float(norms.mean()), "norm_min": float(norms.min()),
                           "norm_max": float(norms.max()), "constant_filters": constant,
                           "pairs": 0, "mean_abs_correlation": None, "max_abs_correlation": None,
                           "most_correlated_pair": None}
    if len(valid) >= 2:
        unit = centred[valid] / spread[valid, None]
        corr = np.clip(unit @ unit.T, -1.0, 1.0)
        i, j = np.triu_indices(len(valid), k=1)
        absolute = np.abs(corr[i, j])
        best = int(np.argmax(absolute))
        out.update(pairs=int(absolute.size), mean_abs_correlation=float(absolute.mean()),
                   max_abs_correlation=float(absolute[best]),
                   most_correlated_pair=[int(valid[i[best]]), int(valid[j[best]])])
    return out


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``count`` tiles."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return max(1, math.ceil(count / cols)), cols


def colour_table(name: str) -> np.ndarray:
    """The 256 RGB colours (uint8) of the matplotlib colour map ``name``, low to high."""
    import matplotlib

    return np.round(matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def colours(values: np.ndarray, value_range: tuple[float, float], cmap: str | None) -> np.ndarray:
    """``values`` as uint8 RGB: [h, w] through the colour map ``cmap``, [h, w, 3] channel by channel (0 to 255)
    from the low to the high end of ``value_range`` (values beyond it are clipped)."""
    low, high = value_range
    level = np.clip((np.asarray(values, np.float64) - low) / (high - low), 0.0, 1.0)
    index = np.round(level * 255).astype(np.uint8)
    if index.ndim == 3:
        return index
    return colour_table(cmap)[index]


def shared_range(tiles: list[np.ndarray], *, symmetric: bool) -> tuple[float, float]:
    """One value range for all ``tiles``: ``[-m, m]`` with m the largest magnitude (``symmetric``, weights),
    else ``[min, max]``; never empty."""
    low, high = min(float(t.min()) for t in tiles), max(float(t.max()) for t in tiles)
    if symmetric:
        low, high = -max(abs(low), abs(high)), max(abs(low), abs(high))
    if high - low <= 1e-12:
        low, high = low - 1.0, high + 1.0
    return low, high


def write_grid(tiles: list[np.ndarray], path, *, scale: int | None = None,
               value_range: tuple[float, float] | None = None, cmap: str = WEIGHT_MAP, label: str = "value") -> dict:
    """Write ``tiles`` ([h, w] or [h, w, 3] arrays, any range) as one PNG grid over a colour scale of
    ``value_range`` (default: the tiles' own, symmetric about 0 for :data:`WEIGHT_MAP`) named ``label``;
    returns its geometry."""
    from PIL import Image

    if not tiles:
        raise UsageError("nothing to draw: no filters or feature maps")
    h, w = tiles[0].shape[:2]
    rgb = any(t.ndim == 3 for t in tiles)
    value_range = value_range or shared_range(tiles, symmetric=cmap == WEIGHT_MAP)
    scale = scale or max(1, math.ceil(MIN_TILE / max(h, w)))
    rows, cols = grid_shape(len(tiles))
    th, tw = h * scale, w * scale
    grid_height, grid_width = rows * (th + PAD) + PAD, cols * (tw + PAD) + PAD
    height, width = grid_height + LEGEND_HEIGHT, max(grid_width, LEGEND_WIDTH)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = SEPARATOR
    for index, tile in enumerate(tiles):
        r, c = divmod(index, cols)
        pixels = colours(tile, value_range, None if rgb else cmap)
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)  # nearest neighbour
        top, left = PAD + r * (th + PAD), PAD + c * (tw + PAD)
        canvas[top:top + th, left:left + tw] = pixels
    image = Image.fromarray(canvas, "RGB")
    _draw_colour_scale(image, grid_height, value_range, rgb, cmap, label)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return {"png": str(path), "rows": rows, "cols": cols, "tile": [th, tw], "scale": scale, "pad": PAD,
            "grid": [grid_width, grid_height], "width": width, "height": height,
            "value_range": [float(v) for v in value_range], "colour_scale": "rgb channels" if rgb else cmap,
            "separator": list(SEPARATOR)}


def _draw_colour_scale(image, top: int, value_range: tuple[float, float], rgb: bool, cmap: str, label: str) -> None:
    """Under the grid: a bar from the low to the high end of ``value_range`` (grey levels for RGB tiles, each
    channel on that scale) and, under it, the two ends and ``label``."""
    from PIL import Image, ImageDraw, ImageFont

    width = image.width - 2 * PAD
    ramp = np.linspace(*value_range, width)
    bar = colours(np.repeat(ramp[:, None], 3, axis=1)[None], value_range, None) if rgb else \
        colours(ramp[None], value_range, cmap)
    image.paste(Image.fromarray(np.repeat(bar, 10, axis=0), "RGB"), (PAD, top))
    draw, font = ImageDraw.Draw(image), ImageFont.load_default()
    low, high = (f"{v:.3g}" for v in value_range)
    y = top + 14
    draw.text((PAD, y), low, fill=TEXT, font=font)
    draw.text((image.width - PAD - draw.textlength(high, font=font), y), high, fill=TEXT, font=font)
    draw.text(((image.width - draw.textlength(label, font=font)) / 2, y), label, fill=TEXT, font=font)


def filter_tiles(kernel) -> tuple[list[np.ndarray], str]:
    """One picture per filter: RGB for 3 input channels, grey for 1, else the mean over input channels."""
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim == 3:  # Conv1D [k, in, out]: a 1 x k strip per filter
        kernel = kernel[None]
    if kernel.ndim != 4:
        raise UsageError(f"cannot draw a kernel of shape {list(kernel.shape)}; 1-D and 2-D convolutions only")
    inputs = kernel.shape[2]
    if inputs == 3:
        return [kernel[:, :, :, k] for k in range(kernel.shape[3])], "rgb"
    if inputs == 1:
        return [kernel[:, :, 0, k] for k in range(kernel.shape[3])], "grey"
    return [kernel[:, :, :, k].mean(axis=2) for k in range(kernel.shape[3])], f"mean of {inputs} input channels"


def _open(run_dir):
    from kerasapps.training import rundir
    from kerasapps.training.checkpoints import load_model

    recipe, _, _ = rundir.open_run(run_dir)
    return recipe, load_model(rundir.final_model_path(run_dir), compile=False)


def filters_picture(run_dir, *, layer: str | None = None, png=None) -> dict:
    """Grid of a run's convolution filters (the first conv layer by default) and their statistics."""
    recipe, model = _open(run_dir)
    conv = pick_conv_layer(model, layer)
    kernel = np.asarray(conv.kernel.numpy())
    tiles, mode = filter_tiles(kernel)
    png = png or Path(run_dir) / "diagnostics" / ("filters.png" if layer is None else f"filters-{conv.name}.png")
    grid = write_grid(tiles, png, cmap=WEIGHT_MAP, label="weight, per channel" if mode == "rgb" else "weight")
    return {"recipe": recipe.name, "layer": conv.name, "drawn_as": mode, **grid,
            "statistics": filter_statistics(kernel)}


def _input_batch(recipe, path: str):
    from kerasapps.savedmodel.inputs import InputSpec, load_inputs

    if recipe.serving is None:
        raise UsageError(f"recipe {recipe.name!r} declares no serving signature; cannot read --input")
    spec = recipe.serving.input_signature()[0]
    if spec.shape.rank not in (3, 4):
        raise UsageError(f"recipe {recipe.name!r} takes {spec.dtype.name} input of shape {spec.shape}, not images")
    (batch, sources, _), = load_inputs([path], InputSpec.of(spec))
    batch = batch[:1]  # the first example of a .npy batch
    x = recipe.preprocess(batch) if recipe.preprocess is not None else batch
    return x, sources[0]


def features_picture(run_dir, input_path: str, *, layer: str | None = None, png=None) -> dict:
    """Grid of the feature maps one input produces at ``layer`` (the first conv layer by default)."""
    import keras

    recipe, model = _open(run_dir)
    target = _feature_layer(model, layer)
    x, source = _input_batch(recipe, input_path)
    probe = keras.Model(model.inputs, target.output)
    maps = np.asarray(keras.ops.convert_to_numpy(probe(x, training=False)))[0]  # [H, W, C]
    tiles = [maps[:, :, c] for c in range(maps.shape[-1])]
    png = png or Path(run_dir) / "diagnostics" / f"features-{target.name}.png"
    grid = write_grid(tiles, png, cmap=ACTIVATION_MAP, label="activation")
    flat = maps.reshape(-1, maps.shape[-1])
    return {"recipe": recipe.name, "layer": target.name, "input": source, "map_shape": list(maps.shape), **grid,
            "statistics": {"maps": int(maps.shape[-1]), "mean": [round(float(v), 6) for v in flat.mean(axis=0)],
                           "std": [round(float(v), 6) for v in flat.std(axis=0)],
                           "zero_fraction": [round(float(v), 6) for v in (flat == 0).mean(axis=0)],
                           "dead_maps": int(((flat == 0).all(axis=0)).sum())}}
