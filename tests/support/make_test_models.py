#!/usr/bin/env python3
"""Build small models for the model-registry HTTP tests (tests/api/models.rs).

    make_test_models.py --demo-manifest models/demo/manifest.json \
        --cohort training/data/cohort.csv --out-dir DIR

Each sub-directory of DIR holds model.onnx and manifest.json; the manifests copy the
extraction settings and settings hash of the demo manifest (the service's settings).

  narrow/      StandardScaler + logistic regression on FEATURES, trained on the cohort;
               training ranges, linear explanation terms and a robustness table, as
               training/pipeline.py exports them. Version 1.0.0.
  wide/        the same graph, version 2.0.0, with training ranges widened a millionfold
               (no lesion is out of distribution).
  mismatch/    graph trained on two features, manifest lists FEATURES (three).
  regression/  LinearRegression (output `variable`, float [N, 1]): not a probability.
  unknown/     the narrow graph, its manifest naming a feature radscore does not compute.
  bundle/      a location-aware bundle (manifest.json with bundle_version, one
               <sub-model id>.onnx per sub-model): `pleura` (pleura lesions, features
               morph_volume and stat_mean) and `rest` (other and soft_tissue lesions,
               FEATURES), each trained on the cohort rows of its locations; lymph_node and
               peritoneum are covered by no sub-model.
  bundle_mismatch/  the bundle with `pleura`'s graph replaced by the three-feature graph.
"""

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["morph_volume", "stat_mean", "stat_var"]
OPSET = 17
WIDEN = 1.0e6


def convert(model, width: int, zipmap: bool) -> bytes:
    options = {id(model.steps[-1][1]): {"zipmap": False}} if zipmap else None
    onx = convert_sklearn(
        model,
        initial_types=[("input", FloatTensorType([None, width]))],
        options=options,
        target_opset=OPSET,
    )
    onx.graph.name = "radscore-test"
    return onx.SerializeToString()


def manifest(demo: dict, name: str, version: str, features: list, output: str, column: int) -> dict:
    return {
        "manifest_version": 1,
        "name": name,
        "version": version,
        "synthetic_demo": True,
        "intended_use": "radscore HTTP tests only; NOT for clinical use.",
        "feature_names": features,
        "extraction_settings": demo["extraction_settings"],
        "settings_hash": demo["settings_hash"],
        "input": {"name": "input", "dtype": "float32"},
        "output": {"name": output, "probability_column": column, "semantics": "P(responder)"},
        "training_data": {
            "description": "training/data/cohort.csv (synthetic)",
            "n_patients": 0,
            "n_lesions": 0,
            "n_positive": 0,
            "fingerprint": "sha256:0",
        },
        "metrics": {"validation": "none", "cv_auc_mean": 0.5, "cv_auc_std": 0.0, "cv_auc_folds": []},
    }


def write(out: Path, sub: str, onnx: bytes, doc: dict) -> None:
    d = out / sub
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.onnx").write_bytes(onnx)
    (d / "manifest.json").write_text(json.dumps(doc, indent=2))


def write_bundle(out: Path, sub: str, graphs: dict, doc: dict) -> None:
    d = out / sub
    d.mkdir(parents=True, exist_ok=True)
    for sub_id, onnx in graphs.items():
        (d / f"{sub_id}.onnx").write_bytes(onnx)
    (d / "manifest.json").write_text(json.dumps(doc, indent=2))


def sub_model(demo: dict, table: pd.DataFrame, sub_id: str, locations: list, features: list):
    """Train one bundle sub-model on the cohort rows of its locations."""
    rows = table[table["location"].isin(locations)]
    x = rows[features].to_numpy(dtype=np.float64)
    y = rows["outcome"].to_numpy(dtype=int)
    fitted = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression())]).fit(x, y)
    doc = manifest(demo, f"registry-bundle-{sub_id}", "1.0.0", features, "probabilities", 1)
    doc["training_ranges"] = {
        n: {"min": float(rows[n].min()), "max": float(rows[n].max())} for n in features
    }
    scaler, logreg = fitted.named_steps["scale"], fitted.named_steps["logreg"]
    doc["explanation"] = {
        "intercept": float(logreg.intercept_[0]),
        "terms": {
            n: {"coefficient": float(c), "mean": float(m), "scale": float(s)}
            for n, c, m, s in zip(features, logreg.coef_[0], scaler.mean_, scaler.scale_)
        },
    }
    spec = {"id": sub_id, "locations": locations, "manifest": doc}
    return spec, convert(fitted, len(features), zipmap=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo-manifest", type=Path, required=True)
    ap.add_argument("--cohort", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    a = ap.parse_args()
    demo = json.loads(a.demo_manifest.read_text())
    table = pd.read_csv(a.cohort)
    x = table[FEATURES].to_numpy(dtype=np.float64)
    y = table["outcome"].to_numpy(dtype=int)

    logistic = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression())]).fit(x, y)
    graph = convert(logistic, len(FEATURES), zipmap=True)
    scaler, logreg = logistic.named_steps["scale"], logistic.named_steps["logreg"]
    narrow = manifest(demo, "registry-test", "1.0.0", FEATURES, "probabilities", 1)
    narrow["training_ranges"] = {
        n: {"min": float(table[n].min()), "max": float(table[n].max())} for n in FEATURES
    }
    narrow["explanation"] = {
        "intercept": float(logreg.intercept_[0]),
        "terms": {
            n: {"coefficient": float(c), "mean": float(m), "scale": float(s)}
            for n, c, m, s in zip(FEATURES, logreg.coef_[0], scaler.mean_, scaler.scale_)
        },
    }
    narrow["robustness"] = {"other": {FEATURES[0]: "excellent", FEATURES[1]: "poor"}}
    write(a.out_dir, "narrow", graph, narrow)

    wide = copy.deepcopy(narrow)
    wide["version"] = "2.0.0"
    wide["training_ranges"] = {
        n: {"min": -WIDEN * (abs(r["min"]) + 1), "max": WIDEN * (abs(r["max"]) + 1)}
        for n, r in narrow["training_ranges"].items()
    }
    write(a.out_dir, "wide", graph, wide)

    two = Pipeline([("scale", StandardScaler()), ("logreg", LogisticRegression())]).fit(x[:, :2], y)
    mismatch = manifest(demo, "registry-mismatch", "1.0.0", FEATURES, "probabilities", 1)
    write(a.out_dir, "mismatch", convert(two, 2, zipmap=True), mismatch)

    linear = Pipeline([("scale", StandardScaler()), ("linear", LinearRegression())]).fit(x, y * 10.0)
    regression = manifest(demo, "registry-regression", "1.0.0", FEATURES, "variable", 0)
    write(a.out_dir, "regression", convert(linear, len(FEATURES), zipmap=False), regression)

    unknown = copy.deepcopy(narrow)
    unknown["name"] = "registry-unknown"
    unknown["feature_names"] = FEATURES[:2] + ["wavelet_hhh_glcm_contrast"]
    for key in ("training_ranges", "explanation", "robustness"):
        unknown.pop(key)
    write(a.out_dir, "unknown", graph, unknown)

    pleura, pleura_graph = sub_model(demo, table, "pleura", ["pleura"], FEATURES[:2])
    rest, rest_graph = sub_model(demo, table, "rest", ["other", "soft_tissue"], FEATURES)
    bundle = {
        "bundle_version": 1,
        "name": "registry-bundle",
        "version": "1.0.0",
        "synthetic_demo": True,
        "intended_use": "radscore HTTP tests only; NOT for clinical use.",
        "sub_models": [pleura, rest],
    }
    write_bundle(a.out_dir, "bundle", {"pleura": pleura_graph, "rest": rest_graph}, bundle)
    mismatched = copy.deepcopy(bundle)
    mismatched["name"] = "registry-bundle-mismatch"
    write_bundle(
        a.out_dir, "bundle_mismatch", {"pleura": rest_graph, "rest": rest_graph}, mismatched
    )


if __name__ == "__main__":
    main()
