"""deployers.pyspark end to end: a pyspark.ml and a pyspark.mllib model, local Spark."""

from __future__ import annotations

import numpy as np
import pytest

from clipper_admin.deployers import pyspark as pyspark_deployer

pytest.importorskip("pyspark")
pytestmark = pytest.mark.frameworks


@pytest.fixture(scope="module")
def spark():
    from clipper_core.deployers.pyspark import spark_session

    session = spark_session()
    yield session
    session.stop()


def predict_ml(spark, model, inputs):
    from pyspark.ml.linalg import Vectors

    frame = spark.createDataFrame([(Vectors.dense([float(v) for v in x]),) for x in inputs],
                                  ["features"])
    return [float(row.prediction) for row in model.transform(frame).collect()]


def test_ml_linear_regression_answers_what_spark_computes(cluster, ask, spark):
    from pyspark.ml.linalg import Vectors
    from pyspark.ml.regression import LinearRegression

    rows = [(float(2 * a - b + 1), Vectors.dense([float(a), float(b)]))
            for a in range(4) for b in range(3)]
    model = LinearRegression(maxIter=5).fit(spark.createDataFrame(rows, ["label", "features"]))
    pyspark_deployer.create_endpoint(cluster, "spark-ml", "doubles", predict_ml, model,
                                     spark.sparkContext)
    x = [5.0, 2.0]
    expected = predict_ml(spark, model, [np.array(x)])[0]
    assert expected == pytest.approx(9.0, abs=1e-3)  # the model learnt 2a - b + 1
    assert ask("spark-ml", x) == pytest.approx(expected, rel=1e-9)


def test_mllib_model_is_saved_with_the_spark_context(cluster, ask, spark):
    from pyspark.mllib.regression import LinearRegressionModel

    model = LinearRegressionModel(np.array([0.5, -2.0]), 3.0)

    def predict(spark, model, inputs):
        return [float(model.predict(x)) for x in inputs]

    pyspark_deployer.create_endpoint(cluster, "spark-mllib", "doubles", predict, model, spark)
    assert ask("spark-mllib", [4.0, 1.0]) == pytest.approx(3.0)


def test_not_a_spark_model_is_refused(cluster, spark):
    from clipper_core.errors import ClipperException

    with pytest.raises(ClipperException, match="not a pyspark object"):
        pyspark_deployer.deploy_pyspark_model(cluster, "spark-bad", 1, "doubles", predict_ml,
                                              object(), spark.sparkContext)
