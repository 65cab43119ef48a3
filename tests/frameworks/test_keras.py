"""deployers.keras end to end: a Keras 3 model on the TensorFlow backend."""

from __future__ import annotations

import numpy as np
import pytest

from clipper_admin.deployers import keras as keras_deployer

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.frameworks


def dense() -> keras.Model:
    inputs = keras.Input(shape=(3,))
    hidden = keras.layers.Dense(4, activation="tanh", kernel_initializer=keras.initializers.Constant(0.3),
                                bias_initializer=keras.initializers.Constant(-0.1))(inputs)
    outputs = keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(-0.7))(hidden)
    return keras.Model(inputs, outputs)


def predict(model, inputs):
    import numpy as np

    return [float(v[0]) for v in model.predict(np.stack(inputs), verbose=0)]


def test_keras_model_object_answers_what_keras_computes(cluster, ask):
    model = dense()
    keras_deployer.create_endpoint(cluster, "keras-dense", "doubles", predict, model)
    x = [0.5, -1.0, 2.0]
    expected = float(model.predict(np.array([x]), verbose=0)[0, 0])
    assert ask("keras-dense", x) == pytest.approx(expected, rel=1e-5)


def test_saved_keras_file_deploys(cluster, ask, tmp_path):
    model = dense()
    path = tmp_path / "model.keras"
    model.save(path)
    keras_deployer.deploy_keras_model(cluster, "keras-file", 1, "doubles", predict, str(path))
    cluster.register_application("keras-file", "doubles", "None", 3000000)
    cluster.link_model_to_app("keras-file", "keras-file")
    x = [1.0, 1.0, 1.0]
    assert ask("keras-file", x) == pytest.approx(
        float(model.predict(np.array([x]), verbose=0)[0, 0]), rel=1e-5)


def test_something_else_is_refused(cluster):
    from clipper_core.errors import ClipperException

    with pytest.raises(ClipperException, match="either a Keras Model object or a saved model"):
        keras_deployer.deploy_keras_model(cluster, "keras-bad", 1, "doubles", predict,
                                          "/nonexistent/model.keras")
