"""Write the ONNX fixture the Rust unit tests of `src/model` run: a 4-input logistic
regression with known coefficients, converted exactly as train.py converts the demo model.

The tests recompute P(class 1) = sigmoid(w·x + b) in Rust and compare, so the fixture
checks the whole path: input name and dtype, the output column, the f64 → f32 cast.

    .venv/bin/python training/make_test_fixture.py
"""

from pathlib import Path

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

# Keep in sync with FIXTURE_COEF / FIXTURE_INTERCEPT in src/model/tests.rs.
COEF = np.array([[0.5, -1.25, 2.0, 0.0]])
INTERCEPT = np.array([-0.75])
OUT = Path(__file__).resolve().parent.parent / "src/model/testdata/logreg4.onnx"


def main() -> None:
    # Fit once so scikit-learn sets up every attribute, then pin the parameters.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    clf.coef_ = COEF.copy()
    clf.intercept_ = INTERCEPT.copy()

    onx = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, 4]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(onx.SerializeToString())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
