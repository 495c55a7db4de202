"""Pictures of what a network learned: convolution filters and feature maps, with statistics.

The visual checks of CS231n's "Visualizing what ConvNets learn" (and Zeiler & Fergus 2014): the
first layer's filters of a well-trained network look like smooth oriented edges and colour blobs
(noisy, speckled filters hint at too little regularisation or training), and different filters
should be *uncorrelated* (several nearly identical filters waste capacity). ``filter_statistics`` measures that: the L2 norm of each filter and the Pearson
correlation between every pair of flattened filters.

    from kerasapps.tools.filter_grids import filters_picture, features_picture
    filters_picture("runs/lenet")                       # RUN_DIR/diagnostics/filters.png
    features_picture("runs/lenet", "digit.png", layer="block2_conv")

Grids are written with PIL at an exact size: ``cols = ceil(sqrt(n))`` tiles across,
``rows = ceil(n / cols)`` down, each tile ``scale`` times the filter or map size (nearest
neighbour), ``PAD`` pixels of background between and around tiles. Every tile is min-max
normalised on its own, so the pictures show shape, not scale (the norms are in the statistics).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from kerasapps.core.errors import ConfigError, UsageError
from kerasapps.models.walk import iter_layers

PAD = 1
MIN_TILE = 32  # small filters (3x3, 5x5) are scaled up to at least this many pixels
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


def _normalise(tile: np.ndarray) -> np.ndarray:
    low, high = float(tile.min()), float(tile.max())
    if high - low <= 1e-12:
        return np.full(tile.shape, 0.5)
    return (tile - low) / (high - low)


def write_grid(tiles: list[np.ndarray], path, *, scale: int | None = None) -> dict:
    """Write ``tiles`` ([h, w] or [h, w, 3] arrays, any range) as one PNG grid; returns its geometry."""
    from PIL import Image

    if not tiles:
        raise UsageError("nothing to draw: no filters or feature maps")
    h, w = tiles[0].shape[:2]
    channels = 3 if any(t.ndim == 3 for t in tiles) else 1
    scale = scale or max(1, math.ceil(MIN_TILE / max(h, w)))
    rows, cols = grid_shape(len(tiles))
    th, tw = h * scale, w * scale
    height, width = rows * (th + PAD) + PAD, cols * (tw + PAD) + PAD
    canvas = np.full((height, width, channels), 255, np.uint8)  # white background and separators
    for index, tile in enumerate(tiles):
        r, c = divmod(index, cols)
        pixels = np.round(_normalise(tile) * 255).astype(np.uint8)
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if pixels.shape[-1] != channels:
            pixels = np.repeat(pixels, channels, axis=-1)
        top, left = PAD + r * (th + PAD), PAD + c * (tw + PAD)
        canvas[top:top + th, left:left + tw] = pixels
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas[..., 0] if channels == 1 else canvas, "L" if channels == 1 else "RGB").save(path)
    return {"png": str(path), "rows": rows, "cols": cols, "tile": [th, tw], "scale": scale,
            "width": width, "height": height}


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
    grid = write_grid(tiles, png)
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
    grid = write_grid(tiles, png)
    flat = maps.reshape(-1, maps.shape[-1])
    return {"recipe": recipe.name, "layer": target.name, "input": source, "map_shape": list(maps.shape), **grid,
            "statistics": {"maps": int(maps.shape[-1]), "mean": [round(float(v), 6) for v in flat.mean(axis=0)],
                           "std": [round(float(v), 6) for v in flat.std(axis=0)],
                           "zero_fraction": [round(float(v), 6) for v in (flat == 0).mean(axis=0)],
                           "dead_maps": int(((flat == 0).all(axis=0)).sum())}}
