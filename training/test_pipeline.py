"""Test of training/pipeline.py on the synthetic cohort (run by tests/training_pipeline.rs).

Trains on training/data/cohort.csv with training/data/robustness.csv, then recomputes
with scikit-learn itself, from the pipeline's out-of-fold predictions and exported model:
the pooled and per-fold ROC AUC, the Brier score, the Youden threshold and the confusion
matrix at it; the calibrated model refitted by scikit-learn equals the ONNX export; no
patient is in two folds; every selected feature is robust at every assessed location and
no two selected features have |Spearman ρ| at or above the cut; the manifest's training
ranges are the data's; its linear terms reproduce the ONNX probabilities and its robustness
classes are the ICC table's. Then trains per location (`run_per_location`, two locations
grouped) and checks the bundle: one sub-model per group with disjoint locations, each
trained on its own rows only (count, fingerprint, ranges, grouped folds), its features
robust at its own locations, its AUC recomputed by scikit-learn, its graph equal to
scikit-learn's refitted model and to the bundle's digest. Exits non-zero with a message on
the first failure.

    .venv/bin/python training/test_pipeline.py
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
EXACT = 1e-12
# float32 graph vs float64 scikit-learn.
ONNX_TOLERANCE = 1e-4
# The synthetic outcome is learnable: the noiseless rule reaches about 0.9 (cohort_meta).
MIN_EXPECTED_AUC = 0.7
# Copied into the manifest unchanged (the demo generator's series: 1 mm spacing, no kVp).
ACQUISITION = {"pixel_spacing_mm": {"min": 0.5, "max": 1.5}, "on_violation": "warn"}


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {message}")


def main() -> None:
    options = pipeline.Options(bootstrap=200)
    with tempfile.TemporaryDirectory(prefix="radscore-pipeline-") as tmp:
        out = Path(tmp)
        manifest = pipeline.run(DATA / "cohort.csv", DATA / "robustness.csv",
                                DATA / "cohort_meta.json", out, options, ACQUISITION)
        oof = pd.read_csv(out / "oof_predictions.csv")
        onnx = ort.InferenceSession(str(out / "model.onnx"))
        for name in ["report.md", "roc.png", "calibration.png", "confusion.png"]:
            check((out / name).stat().st_size > 0, f"{name} is empty")

    cohort = pd.read_csv(DATA / "cohort.csv")
    metrics = manifest["metrics"]
    y, p, fold = oof["outcome"].to_numpy(), oof["probability"].to_numpy(), oof["fold"].to_numpy()
    check((oof["lesion_id"] == cohort["lesion_id"]).all(), "OOF rows are not in cohort order")
    icc = pd.read_csv(DATA / "robustness.csv").set_index(["location", "feature"])

    # Grouping: no patient in two folds.
    folds_per_patient = oof.groupby("patient_id")["fold"].nunique()
    check(folds_per_patient.max() == 1, "a patient appears in two folds")

    # Metrics from scikit-learn on the OOF predictions.
    check(abs(metrics["cv_auc_pooled"] - roc_auc_score(y, p)) < EXACT, "pooled AUC")
    fold_aucs = [roc_auc_score(y[fold == f], p[fold == f]) for f in sorted(set(fold))]
    check(np.allclose(metrics["cv_auc_folds"], fold_aucs, atol=EXACT, rtol=0), "fold AUCs")
    check(abs(metrics["cv_brier_pooled"] - brier_score_loss(y, p)) < EXACT, "Brier score")
    fpr, tpr, thresholds = roc_curve(y, p)
    youden = min(thresholds[np.argmax(tpr - fpr)], 1.0)
    check(abs(metrics["threshold"] - youden) < EXACT, "Youden threshold")
    tn, fp, fn, tp = confusion_matrix(y, (p >= youden).astype(int)).ravel()
    check(metrics["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
          f"confusion matrix {metrics['confusion_matrix']} vs {(tn, fp, fn, tp)}")
    low, high = metrics["cv_auc_pooled_ci95"]
    check(low < metrics["cv_auc_pooled"] < high, "AUC outside its CI")
    check(metrics["cv_auc_pooled"] > MIN_EXPECTED_AUC, f"AUC {metrics['cv_auc_pooled']:.3f}")

    # The exported model is scikit-learn's calibrated model refitted on all rows.
    names = manifest["feature_names"]
    x = cohort[names].to_numpy(dtype=np.float64)
    got = check_graph(onnx, cohort, names, options, "ONNX")

    # Feature selection invariants.
    for loc in manifest["feature_selection"]["assessed_locations"]:
        for name in names:
            check(icc.loc[(loc, name), "class"] in options.accept, f"{name} not robust at {loc}")
    rho = cohort[names].corr(method="spearman").abs().to_numpy().copy()
    np.fill_diagonal(rho, 0.0)
    check(rho.max() < options.max_abs_corr, f"selected features correlate: {rho.max():.3f}")
    for name in names:
        r = manifest["training_ranges"][name]
        check(r == {"min": cohort[name].min(), "max": cohort[name].max()}, f"range of {name}")

    # The exported linear terms reproduce the graph: sigmoid(intercept + Σ c·(x − m)/s).
    terms = manifest["explanation"]["terms"]
    check(list(terms) == names or sorted(terms) == sorted(names), "explanation covers the features")
    logit = manifest["explanation"]["intercept"] + sum(
        terms[n]["coefficient"] * (x[:, i] - terms[n]["mean"]) / terms[n]["scale"]
        for i, n in enumerate(names))
    check(np.max(np.abs(1.0 / (1.0 + np.exp(-logit)) - got)) < ONNX_TOLERANCE,
          "explanation terms do not reproduce the ONNX probabilities")
    # Robustness classes are the ICC table's.
    for loc, classes in manifest["robustness"].items():
        for name, klass in classes.items():
            check(icc.loc[(loc, name), "class"] == klass, f"robustness class of {name} at {loc}")
    check(set(manifest["robustness"]) >= set(manifest["feature_selection"]["assessed_locations"]),
          "robustness classes for every assessed location")

    check(manifest["acquisition"] == ACQUISITION, "acquisition envelope copied")

    print(f"OK: {len(names)} features, AUC {metrics['cv_auc_pooled']:.3f}, "
          f"{len(set(fold))} grouped folds")
    check_bundle(cohort, icc)


def check_graph(onnx, rows: pd.DataFrame, names: list[str], options, what: str) -> np.ndarray:
    """The graph's P(responder) on `rows`, checked against scikit-learn's calibrated model
    refitted on them with the pipeline's options."""
    x = rows[names].to_numpy(dtype=np.float64)
    y = rows["outcome"].to_numpy(dtype=int)
    groups = rows["patient_id"].astype(str).to_numpy()
    splits = StratifiedGroupKFold(n_splits=options.calibration_folds, shuffle=True,
                                  random_state=options.seed + 1).split(x, y, groups)
    base = Pipeline([("scale", StandardScaler()),
                     ("logreg", LogisticRegression(C=options.c, max_iter=10_000))])
    reference = CalibratedClassifierCV(base, method="sigmoid", cv=list(splits), ensemble=False)
    want = reference.fit(x, y).predict_proba(x)[:, 1]
    got = onnx.run(["probabilities"], {"input": x.astype(np.float32)})[0][:, 1]
    check(np.max(np.abs(got - want)) < ONNX_TOLERANCE, f"{what} differs from scikit-learn")
    return got


# Sub-models of the per-location check: two rarer locations trained together.
BUNDLE_GROUPS = {"rest": ["lymph_node", "soft_tissue"]}
EXPECTED_SUB_MODELS = {"rest": ["lymph_node", "soft_tissue"], "peritoneum": ["peritoneum"],
                       "pleura": ["pleura"]}


def check_bundle(cohort: pd.DataFrame, icc: pd.DataFrame) -> None:
    options = pipeline.Options(bootstrap=50, name="by-location")
    with tempfile.TemporaryDirectory(prefix="radscore-bundle-") as tmp:
        out = Path(tmp)
        bundle = pipeline.run_per_location(DATA / "cohort.csv", DATA / "robustness.csv",
                                           DATA / "cohort_meta.json", out, options, BUNDLE_GROUPS)
        written = json.loads((out / "manifest.json").read_text())
        check(written == bundle, "bundle manifest on disk differs from the returned one")
        check(bundle["bundle_version"] == 1 and bundle["name"] == "by-location", "bundle header")
        subs = {s["id"]: s for s in bundle["sub_models"]}
        check({k: s["locations"] for k, s in subs.items()} == EXPECTED_SUB_MODELS,
              f"sub-models {[(k, s['locations']) for k, s in subs.items()]}")
        check(len({s["manifest"]["settings_hash"] for s in subs.values()}) == 1, "one settings hash")
        for sub_id, sub in subs.items():
            check_sub_model(out, sub_id, sub, cohort, icc, options)
    print(f"OK: bundle of {len(subs)} sub-models, each trained on its own locations")


def check_sub_model(out: Path, sub_id: str, sub: dict, cohort: pd.DataFrame, icc: pd.DataFrame,
                    options) -> None:
    manifest, sub_dir = sub["manifest"], out / "sub_models" / sub_id
    rows = cohort[cohort["location"].isin(sub["locations"])].reset_index(drop=True)
    graph = (out / f"{sub_id}.onnx").read_bytes()
    check(graph == (sub_dir / "model.onnx").read_bytes(), f"{sub_id}: bundled graph is the sub-model's")
    check(sub["sha256"] == "sha256:" + hashlib.sha256(graph).hexdigest(), f"{sub_id}: graph digest")
    data = manifest["training_data"]
    check(data["n_lesions"] == len(rows), f"{sub_id}: trained on {data['n_lesions']} of {len(rows)} rows")
    fingerprint = hashlib.sha256((sub_dir / "training_rows.csv").read_bytes()).hexdigest()
    check(data["fingerprint"] == "sha256:" + fingerprint, f"{sub_id}: fingerprint of its rows")
    names = manifest["feature_names"]
    for name in names:
        r = manifest["training_ranges"][name]
        check(r == {"min": rows[name].min(), "max": rows[name].max()}, f"{sub_id}: range of {name}")

    assessed = manifest["feature_selection"]["assessed_locations"]
    check(set(assessed) <= set(sub["locations"]), f"{sub_id}: assessed at other locations {assessed}")
    for loc in assessed:
        for name in names:
            check(icc.loc[(loc, name), "class"] in options.accept, f"{sub_id}: {name} not robust at {loc}")

    oof = pd.read_csv(sub_dir / "oof_predictions.csv")
    check((oof["lesion_id"] == rows["lesion_id"]).all(), f"{sub_id}: OOF rows are not its rows")
    check(oof.groupby("patient_id")["fold"].nunique().max() == 1, f"{sub_id}: a patient in two folds")
    auc = roc_auc_score(oof["outcome"], oof["probability"])
    check(abs(manifest["metrics"]["cv_auc_pooled"] - auc) < EXACT, f"{sub_id}: pooled AUC")
    sub_options = pipeline.Options(**{**options.__dict__, "name": f"{options.name}-{sub_id}"})
    check_graph(ort.InferenceSession(graph), rows, names, sub_options, f"{sub_id}: ONNX")


if __name__ == "__main__":
    main()
