"""scikit-learn and XGBoost need no deployer of their own: deploy_python_closure
with pkgs_to_install, end to end."""

from __future__ import annotations

import numpy as np
import pytest

from clipper_admin.deployers.python import create_endpoint

pytestmark = pytest.mark.frameworks


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    return x, (x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] > 0).astype(int)


def test_scikit_learn_pipeline(cluster, ask):
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(*data())

    def predict(inputs):
        return model.predict_proba(np.stack(inputs))[:, 1].tolist()

    create_endpoint(cluster, "sklearn-lr", "doubles", predict, pkgs_to_install=["scikit-learn"])
    x = [0.3, -1.2, 2.0]
    assert ask("sklearn-lr", x) == pytest.approx(model.predict_proba([x])[0, 1], rel=1e-9)


def test_xgboost_booster(cluster, ask):
    xgb = pytest.importorskip("xgboost")
    x_train, y_train = data()
    model = xgb.XGBClassifier(n_estimators=8, max_depth=2, n_jobs=1).fit(x_train, y_train)

    def predict(inputs):
        return model.predict_proba(np.stack(inputs))[:, 1].tolist()

    create_endpoint(cluster, "xgb", "doubles", predict, pkgs_to_install=["xgboost-cpu"])
    x = [1.0, 0.5, -0.25]
    assert ask("xgb", x) == pytest.approx(float(model.predict_proba(np.array([x]))[0, 1]),
                                          rel=1e-6)
