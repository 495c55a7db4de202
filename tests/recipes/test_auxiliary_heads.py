"""GoogLeNet's auxiliary classifiers (Szegedy et al. 2014, section 5) train beside the main head, their
losses weighted 0.3 each, and are left out of the export."""

import numpy as np
import pytest

import kerasapps


def test_googlenet_trains_its_auxiliary_heads_and_exports_the_main_one(recipe_data_dir, tmp_path):
    import tensorflow as tf

    from kerasapps.recipes.googlenet import googlenet

    run = kerasapps.train("googlenet_cifar10", run_dir=tmp_path / "run", data_dir=recipe_data_dir, smoke=True,
                          verbose=0, set={"aux_heads": True, "l2": 0.0})
    test = run.metrics["test"]
    assert {"predictions_loss", "aux1_predictions_loss", "aux2_predictions_loss", "predictions_accuracy"} <= set(test)
    weighted = test["predictions_loss"] + 0.3 * (test["aux1_predictions_loss"] + test["aux2_predictions_loss"])
    assert test["loss"] == pytest.approx(weighted, rel=1e-4)
    assert kerasapps.evaluate(run.run_dir, data_dir=recipe_data_dir)["metrics"] == pytest.approx(test, rel=1e-5)

    path = kerasapps.export(run.run_dir, out=tmp_path / "models")
    loaded = tf.saved_model.load(str(path))
    assert not [v.name for v in loaded.variables if "aux" in v.name]
    plain = googlenet(input_shape=(32, 32, 3), classes=10, stem="small", lrn=False, batch_norm=True)
    weights = [v for v in loaded.variables if v.dtype.is_floating]  # not the dropout seed generators' states
    assert sum(int(np.prod(v.shape)) for v in weights) == plain.count_params()
    out = loaded.signatures["serving_default"](images=tf.zeros([2, 32, 32, 3], tf.uint8))
    assert out["probabilities"].shape == (2, 10)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=-1), 1.0, rtol=1e-5)
