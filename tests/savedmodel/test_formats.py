"""Export formats share one registry: a registered format is written under its own root, versioned and
atomically, beside SavedModels it never mixes with; a failed write leaves no version behind."""

import json

import numpy as np
import pytest

import kerasapps
from kerasapps.core.errors import RunError, UsageError
from kerasapps.savedmodel import formats
from kerasapps.savedmodel.export import export
from kerasapps.savedmodel.formats import EXPORT_INFO, ExportFormat, register_export_format


def _write_weights(recipe, hp, run_dir, model_path, folder, bar):
    from kerasapps.training.checkpoints import load_model

    model = load_model(model_path, compile=False)
    np.savez(folder / "weights.npz", *model.get_weights())
    return {"arrays": len(model.get_weights())}


def _fail(recipe, hp, run_dir, model_path, folder, bar):
    (folder / "weights.npz").write_bytes(b"half")
    raise OSError("disk full")


def test_a_registered_format_is_versioned_atomically_under_its_own_root(tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "FORMATS", dict(formats.FORMATS))
    register_export_format(ExportFormat("weights", "weights.npz", _write_weights, "weight_files"))
    run = kerasapps.train("mlp_mnist", run_dir=tmp_path / "run", data_dir=tiny_data_dir, smoke=True, verbose=0)
    first = export(run.run_dir, format="weights")  # the working directory is the test's own
    second = export(run.run_dir, format="weights")
    out = tmp_path / "weight_files"
    assert (first.resolve(), second.resolve()) == (out / "mlp_mnist" / "1", out / "mlp_mnist" / "2")
    info = json.loads((second / EXPORT_INFO).read_text())
    assert info["format"] == "weights" and info["version"] == 2 and info["arrays"] == len(np.load(
        second / "weights.npz").files) > 0
    saved = export(run.run_dir)
    assert saved.resolve() == tmp_path / "saved_models" / "mlp_mnist" / "1" and (saved / "saved_model.pb").is_file()
    assert json.loads((saved / EXPORT_INFO).read_text())["format"] == "saved_model"
    with pytest.raises(UsageError, match="--out saved_models holds SavedModels .*; write the weights export "
                                         "elsewhere .default weight_files."):
        export(run.run_dir, out="saved_models", format="weights")  # TF Serving would see a version without one

    register_export_format(ExportFormat("weights", "weights.npz", _fail, "weight_files"))
    with pytest.raises(RunError, match="could not write the export to .*/3: disk full"):
        export(run.run_dir, format="weights")
    assert sorted(p.name for p in (out / "mlp_mnist").iterdir()) == ["1", "2"]  # no 3, no temporary folder
    with pytest.raises(UsageError,
                       match="unknown export format .onnxx.; the formats are litert, onnx, saved_model, weights"):
        export(run.run_dir, out=out, format="onnxx")
