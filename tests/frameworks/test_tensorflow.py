"""deployers.tensorflow end to end: a TF 1 style session, a SavedModel, a Keras model."""

from __future__ import annotations

import numpy as np
import pytest

from clipper_admin.deployers import tensorflow as tf_deployer

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.frameworks


def session() -> tf.compat.v1.Session:
    """y = x @ W + b in a graph of its own, variables initialised."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float64, [None, 2], name="x")
        w = tf.compat.v1.Variable([[2.0], [-3.0]], dtype=tf.float64, name="W")
        b = tf.compat.v1.Variable([0.5], dtype=tf.float64, name="b")
        tf.identity(tf.matmul(x, w) + b, name="y")
        sess = tf.compat.v1.Session(graph=graph)
        sess.run(tf.compat.v1.global_variables_initializer())
    return sess


def run_session(sess, inputs):
    import numpy as np

    return [float(v[0]) for v in sess.run("y:0", feed_dict={"x:0": np.stack(inputs)})]


class Scaler(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable([1.5, -0.5, 2.0], dtype=tf.float64)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float64)])
    def __call__(self, x):
        return tf.reduce_sum(x * self.w, axis=1)


def test_session_is_checkpointed_and_restored(cluster, ask):
    sess = session()
    tf_deployer.create_endpoint(cluster, "tf-session", "doubles", run_session, sess)
    x = [1.0, 4.0]
    assert ask("tf-session", x) == pytest.approx(run_session(sess, [np.array(x)])[0])


def test_saved_model_directory_and_tf_module(cluster, ask, tmp_path):
    module = Scaler()
    tf.saved_model.save(module, str(tmp_path / "scaler"))

    def call(loaded, inputs):
        import numpy as np

        return [float(v) for v in loaded(np.stack(inputs)).numpy()]

    x = [2.0, 1.0, -1.0]
    expected = float(module(np.array([x]))[0])
    tf_deployer.create_endpoint(cluster, "tf-saved", "doubles", call, str(tmp_path / "scaler"))
    tf_deployer.create_endpoint(cluster, "tf-module", "doubles", call, module)
    assert ask("tf-saved", x) == pytest.approx(expected)
    assert ask("tf-module", x) == pytest.approx(expected)


def test_keras_model_through_the_tensorflow_deployer(cluster, ask):
    keras = pytest.importorskip("keras")
    inputs = keras.Input(shape=(2,))
    model = keras.Model(inputs, keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(0.25))(inputs))

    def predict(model, inputs):
        import numpy as np

        return [float(v[0]) for v in model.predict(np.stack(inputs), verbose=0)]

    tf_deployer.create_endpoint(cluster, "tf-keras", "doubles", predict, model)
    assert ask("tf-keras", [4.0, 8.0]) == pytest.approx(3.0)


def test_what_is_not_a_tensorflow_model_is_refused(cluster, tmp_path):
    from clipper_core.errors import ClipperException

    with pytest.raises(ClipperException, match="neither a SavedModel"):
        tf_deployer.deploy_tensorflow_model(cluster, "tf-empty", 1, "doubles", run_session,
                                            str(tmp_path))
    with pytest.raises(ClipperException, match="must be a tf.compat.v1.Session"):
        tf_deployer.deploy_tensorflow_model(cluster, "tf-int", 1, "doubles", run_session, 42)
