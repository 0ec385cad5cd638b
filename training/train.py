"""Train, evaluate and export the synthetic demo model of radscore.

Model: standardisation of every feature the extractor produces (in the extractor's
order), then an L2-penalised logistic regression (C = 0.1, lbfgs). All features are used
because the service feeds the model the extractor's full vector; the L2 penalty, not a
feature subset, keeps the 77 correlated features in check.

Evaluation: 5-fold cross-validation grouped by patient (GroupKFold), so no patient has
lesions in both the training and the test fold; ROC AUC per fold, plus Brier score on the
pooled out-of-fold predictions. The exported model is then refitted on all lesions.

Export: skl2onnx, input ``input`` float32 [None, n_features], output ``probabilities``
float32 [None, 2] (``zipmap: False``), column 1 = P(responder), ONNX opset 17. The export
is checked against scikit-learn on every training row.

    .venv/bin/python training/train.py --cohort-dir training/data --out models/demo
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sklearn
import skl2onnx
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent.parent

MODEL_NAME = "radscore-demo-logreg"
MODEL_VERSION = "0.1.0"
L2_C = 0.1
CV_FOLDS = 5
ONNX_OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
# scikit-learn computes in float64, the ONNX graph in float32: a few float32 ulps.
ONNX_TOLERANCE = 1e-4

INTENDED_USE = (
    "Synthetic demonstration model, NOT for clinical use. Trained only on synthetic CT "
    "cases made by `radscore demo-data`, with an outcome defined by a made-up rule on the "
    "generator's latent lesion parameters. It exists to exercise radscore's scoring path "
    "end to end; its probabilities say nothing about any real patient or lesion."
)


def make_model() -> Pipeline:
    # L2 is scikit-learn's default penalty (l1_ratio=0); `penalty=` is deprecated in 1.8+.
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=L2_C, solver="lbfgs", max_iter=10_000)),
        ]
    )


def load_cohort(cohort_dir: Path) -> tuple[dict, list[str], np.ndarray, np.ndarray, np.ndarray]:
    meta = json.loads((cohort_dir / "cohort_meta.json").read_text())
    names = meta["feature_names"]
    with open(cohort_dir / "cohort.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header[6:] != names:
            raise SystemExit("cohort.csv feature columns differ from cohort_meta.json")
        rows = list(reader)
    groups = np.array([r[0] for r in rows])
    y = np.array([int(r[5]) for r in rows])
    x = np.array([[float(v) for v in r[6:]] for r in rows], dtype=np.float64)
    return meta, names, x, y, groups


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict:
    oof = np.zeros(len(y))
    fold_aucs = []
    for train, test in GroupKFold(n_splits=CV_FOLDS).split(x, y, groups):
        model = make_model().fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
        fold_aucs.append(float(roc_auc_score(y[test], oof[test])))
    return {
        "validation": f"{CV_FOLDS}-fold GroupKFold by patient (no patient in both train and test)",
        "cv_auc_mean": float(np.mean(fold_aucs)),
        "cv_auc_std": float(np.std(fold_aucs)),
        "cv_auc_folds": fold_aucs,
        "cv_auc_pooled": float(roc_auc_score(y, oof)),
        "cv_brier_pooled": float(brier_score_loss(y, oof)),
    }


def noiseless_rule_auc(cohort_dir: Path, meta: dict, y: np.ndarray) -> float:
    """AUC of the outcome rule without its noise term, from the latent parameters: the
    ceiling a perfect feature model could reach on this cohort (for context only)."""
    rule = meta["outcome_rule"]
    with open(cohort_dir / "cohort_latent.csv", newline="") as f:
        latent = list(csv.DictReader(f))
    with open(cohort_dir / "cohort.csv", newline="") as f:
        locations = [r["location"] for r in csv.DictReader(f)]
    scores = []
    for row, location in zip(latent, locations, strict=True):
        s = rule["intercept"] + rule["location_offset"].get(location, 0.0)
        for name, centre, scale, weight in rule["terms"]:
            s += weight * (float(row[name]) - centre) / scale
        scores.append(s)
    return float(roc_auc_score(y, scores))


def export_onnx(model: Pipeline, n_features: int, x: np.ndarray) -> tuple[bytes, float]:
    onx = convert_sklearn(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        options={id(model.named_steps["logreg"]): {"zipmap": False}},
        target_opset=ONNX_OPSET,
    )
    # skl2onnx names the graph with a random UUID; a fixed name makes rebuilds
    # byte-identical, so the model's sha256 only changes when the model does.
    onx.graph.name = MODEL_NAME
    data = onx.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0][:, 1]
    diff = float(np.max(np.abs(got - model.predict_proba(x)[:, 1])))
    if diff > ONNX_TOLERANCE:
        raise SystemExit(f"ONNX export differs from scikit-learn by {diff} (> {ONNX_TOLERANCE})")
    return data, diff


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cohort-dir", type=Path, default=ROOT / "training/data")
    ap.add_argument("--out", type=Path, default=ROOT / "models/demo")
    args = ap.parse_args()

    meta, names, x, y, groups = load_cohort(args.cohort_dir)
    metrics = cross_validate(x, y, groups)
    model = make_model().fit(x, y)
    metrics["train_auc"] = float(roc_auc_score(y, model.predict_proba(x)[:, 1]))
    onnx_bytes, diff = export_onnx(model, len(names), x)
    metrics["onnx_vs_sklearn_max_abs_diff"] = diff
    metrics["reference_auc_noiseless_rule"] = noiseless_rule_auc(args.cohort_dir, meta, y)

    fingerprint = hashlib.sha256((args.cohort_dir / "cohort.csv").read_bytes()).hexdigest()
    rule = meta["outcome_rule"]
    manifest = {
        "manifest_version": 1,
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "synthetic_demo": True,
        "intended_use": INTENDED_USE,
        "feature_names": names,
        "extraction_settings": meta["extraction_settings"],
        "settings_hash": meta["settings_hash"],
        "input": {"name": INPUT_NAME, "dtype": "float32"},
        "output": {
            "name": OUTPUT_NAME,
            "probability_column": 1,
            "semantics": "P(responder): probability that the lesion is a responder under the "
            "synthetic outcome rule (column 1 of [P(non-responder), P(responder)])",
        },
        "training_data": {
            "description": (
                f"{meta['patients']} synthetic patients from `radscore demo-data` (seeds "
                f"{meta['seed_base']}..{meta['seed_base'] + meta['patients'] - 1}); features "
                "from `radscore extract` with the bundled settings. Outcome per lesion: "
                "responder if w·z(latent) + location offset + N(0, "
                f"{rule['noise_sd']}) > {rule['threshold']}, with terms "
                f"{json.dumps(rule['terms'])} ([parameter, centre, scale, weight]) and "
                f"location offsets {json.dumps(rule['location_offset'])}; see "
                "training/generate_cohort.py."
            ),
            "n_patients": meta["patients"],
            "n_lesions": int(len(y)),
            "n_positive": int(y.sum()),
            "fingerprint": f"sha256:{fingerprint}",
        },
        "metrics": {
            **metrics,
            "model": f"StandardScaler + LogisticRegression(L2, C={L2_C}), all {len(names)} "
            "features",
            "software": f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
            f"onnxruntime {ort.__version__}, numpy {np.__version__}",
        },
    }

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model.onnx").write_bytes(onnx_bytes)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"CV AUC {metrics['cv_auc_mean']:.3f} ± {metrics['cv_auc_std']:.3f} "
        f"(pooled {metrics['cv_auc_pooled']:.3f}), train AUC {metrics['train_auc']:.3f}, "
        f"{len(y)} lesions / {meta['patients']} patients -> {args.out}"
    )


if __name__ == "__main__":
    main()
