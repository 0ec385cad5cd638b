"""radscore training pipeline: robust, non-redundant features → grouped CV → calibrated
logistic regression → report + ONNX + manifest.

Input
  --features  CSV with columns patient_id, lesion_id, location, outcome (1 = responder,
              0 = non-responder) and one column per feature (IBSI tags, as written by
              `radscore extract` or training/generate_cohort.py; `seed` and `label` columns
              are ignored).
  --icc       robustness table from `radscore robustness` (robustness.csv: location,
              feature, icc, class, ...).
  --meta      JSON with `extraction_settings` and `settings_hash` (cohort_meta.json).

Steps
  1. Robustness filter: a feature is kept when its ICC class is in --accept (default good,
     excellent) at every training location where the ICC table has defined ICCs. Other
     training locations (no rows, or too few lesions for an ICC) are listed in the report
     as not assessed.
  2. Redundancy filter: hierarchical clustering of the kept features on
     1 − |Spearman ρ| with single linkage, cut at 1 − --max-abs-corr (so no two selected
     features reach |ρ| ≥ --max-abs-corr); from each cluster the feature with the
     highest smallest ICC across locations (then highest mean ICC, then name) stays.
     Both filters ignore the outcome, so doing them once on all rows leaks no label.
  3. Model: StandardScaler + L2 logistic regression, wrapped in CalibratedClassifierCV
     (sigmoid / Platt scaling) whose calibration folds are grouped by patient.
  4. Evaluation: StratifiedGroupKFold by patient (never the same patient in a training and
     a test fold); out-of-fold probabilities give the pooled ROC AUC with a patient-level
     bootstrap 95 % CI, the Brier score, the calibration curve, and the confusion matrix
     at the Youden-optimal threshold.
  5. Export: the model refitted on all rows as ONNX (skl2onnx, input `input` float32
     [N, n_selected], output `probabilities`, column 1 = P(responder)), checked against
     scikit-learn; manifest.json with the feature list, settings hash, per-feature
     training ranges, metrics and the training-data fingerprint (sha256 of the CSV), the
     linear terms (intercept, and per feature the folded coefficient with the scaler's
     mean and scale) and the ICC class of each selected feature per location — the
     service reports out-of-distribution features, top contributions and robustness
     classes per lesion from these.

Outputs (in --out): model.onnx, manifest.json, report.md, roc.png, calibration.png,
confusion.png, oof_predictions.csv (lesion_id, patient_id, fold, outcome, probability).

Per location (--per-location): the steps above run once per location of the features CSV
(or per --location-group ID=LOC[,LOC...], for locations too rare to train alone), each on
that location's rows only, so each sub-model has its own robust features (assessed at its
own locations), ranges, metrics and fingerprint. --out then holds the location bundle of
docs/model-bundles.md, ready for POST /v1/models: manifest.json (bundle_version 1) and
<ID>.onnx per sub-model (assembled by training/make_bundle.py's `assemble`), with each
sub-model's full outputs and its training_rows.csv in sub_models/<ID>/.

    .venv/bin/python training/pipeline.py --features training/data/cohort.csv \\
        --icc training/data/robustness.csv --meta training/data/cohort_meta.json --out out/
    .venv/bin/python training/pipeline.py ... --out bundle/ --per-location \\
        --location-group rest=lymph_node,soft_tissue
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import pandas as pd  # noqa: E402
import sklearn  # noqa: E402
import skl2onnx  # noqa: E402
from scipy.cluster.hierarchy import fcluster, linkage  # noqa: E402
from scipy.spatial.distance import squareform  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV, calibration_curve  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import brier_score_loss, confusion_matrix, roc_auc_score, roc_curve  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_bundle  # noqa: E402

ID_COLUMNS = ["patient_id", "lesion_id", "location", "outcome"]
IGNORED_COLUMNS = ["seed", "label"]
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
ONNX_OPSET = 17
# scikit-learn computes in float64, the ONNX graph in float32.
ONNX_TOLERANCE = 1e-4
CALIBRATION_BINS = 10


@dataclass
class Options:
    accept: tuple[str, ...] = ("good", "excellent")
    max_abs_corr: float = 0.9
    c: float = 1.0
    folds: int = 5
    calibration_folds: int = 3
    bootstrap: int = 1000
    seed: int = 20261204
    name: str = "radscore-logreg"
    version: str = "0.1.0"
    synthetic_demo: bool = False
    intended_use: str = "Research use only; not validated for clinical decisions."


def load_features(path: Path) -> tuple[pd.DataFrame, list[str]]:
    table = pd.read_csv(path)
    missing = [c for c in ID_COLUMNS if c not in table.columns]
    if missing:
        raise SystemExit(f"{path}: missing column(s) {', '.join(missing)}")
    if not set(table["outcome"].unique()) <= {0, 1}:
        raise SystemExit(f"{path}: outcome must be 0 or 1")
    names = [c for c in table.columns if c not in ID_COLUMNS + IGNORED_COLUMNS]
    if not names:
        raise SystemExit(f"{path}: no feature columns")
    return table, names


def robust_features(names: list[str], icc: pd.DataFrame, locations: list[str], accept) -> dict:
    """Features whose class is accepted at every assessed training location. A location is
    assessed when the table has at least one defined ICC there (two or more lesions)."""
    defined = icc[icc["icc"].notna()]
    assessed = sorted(set(locations) & set(defined["location"]))
    if not assessed:
        raise SystemExit("the ICC table covers none of the training locations")
    by_key = icc.set_index(["location", "feature"])
    kept, min_icc, mean_icc = [], {}, {}
    for name in names:
        rows = [by_key.loc[(loc, name)] if (loc, name) in by_key.index else None for loc in assessed]
        if any(r is None or r["class"] not in accept for r in rows):
            continue
        values = [float(r["icc"]) for r in rows]
        kept.append(name)
        min_icc[name], mean_icc[name] = min(values), float(np.mean(values))
    return {
        "assessed_locations": assessed,
        "not_assessed_locations": sorted(set(locations) - set(assessed)),
        "kept": kept,
        "min_icc": min_icc,
        "mean_icc": mean_icc,
    }


def drop_redundant(x: pd.DataFrame, robust: dict, max_abs_corr: float) -> tuple[list[str], list[list[str]]]:
    """One representative per single-linkage cluster of |Spearman ρ| ≥ max_abs_corr."""
    names = robust["kept"]
    if len(names) <= 1:
        return names, [names]
    rho = x[names].corr(method="spearman").abs().fillna(0.0).to_numpy()
    distance = np.clip(1.0 - rho, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="single")
    labels = fcluster(tree, t=1.0 - max_abs_corr, criterion="distance")
    clusters: dict[int, list[str]] = {}
    for name, label in zip(names, labels, strict=True):
        clusters.setdefault(int(label), []).append(name)
    ranked = [
        sorted(members, key=lambda n: (-robust["min_icc"][n], -robust["mean_icc"][n], n))
        for members in clusters.values()
    ]
    chosen = sorted((m[0] for m in ranked), key=names.index)
    return chosen, sorted(ranked, key=lambda m: names.index(m[0]))


def make_model(options: Options, calibration_splits) -> CalibratedClassifierCV:
    base = Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=options.c, solver="lbfgs", max_iter=10_000)),
        ]
    )
    # ensemble=False: one model refitted on all rows plus one sigmoid fitted on the
    # out-of-fold decision values, which export_onnx folds into a single logistic layer.
    return CalibratedClassifierCV(base, method="sigmoid", cv=calibration_splits, ensemble=False)


def grouped_splits(y, groups, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, options: Options):
    calibration = grouped_splits(y, groups, options.calibration_folds, options.seed + 1)
    return make_model(options, calibration).fit(x, y)


def cross_validate(x, y, groups, options: Options) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities and the fold of each row."""
    oof = np.zeros(len(y))
    fold_of = np.zeros(len(y), dtype=int)
    for fold, (train, test) in enumerate(grouped_splits(y, groups, options.folds, options.seed)):
        model = fit(x[train], y[train], groups[train], options)
        oof[test] = model.predict_proba(x[test])[:, 1]
        fold_of[test] = fold
    return oof, fold_of


def bootstrap_auc_ci(y, p, groups, n: int, seed: int) -> tuple[float, float]:
    """95 % percentile CI of the AUC, resampling patients with replacement."""
    rng = np.random.default_rng(seed)
    patients = np.unique(groups)
    rows = {g: np.flatnonzero(groups == g) for g in patients}
    aucs = []
    for _ in range(n):
        idx = np.concatenate([rows[g] for g in rng.choice(patients, size=len(patients))])
        if len(np.unique(y[idx])) == 2:
            aucs.append(roc_auc_score(y[idx], p[idx]))
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def youden_threshold(y, p) -> float:
    fpr, tpr, thresholds = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def evaluate(y, oof, fold_of, groups, options: Options) -> dict:
    folds = sorted(set(fold_of.tolist()))
    fold_aucs = [float(roc_auc_score(y[fold_of == f], oof[fold_of == f])) for f in folds]
    low, high = bootstrap_auc_ci(y, oof, groups, options.bootstrap, options.seed)
    threshold = youden_threshold(y, oof)
    tn, fp, fn, tp = confusion_matrix(y, (oof >= threshold).astype(int), labels=[0, 1]).ravel()
    return {
        "validation": f"{options.folds}-fold StratifiedGroupKFold by patient (no patient in "
        "both train and test); probabilities calibrated with sigmoid scaling on "
        f"{options.calibration_folds} patient-grouped inner folds",
        "cv_auc_mean": float(np.mean(fold_aucs)),
        "cv_auc_std": float(np.std(fold_aucs)),
        "cv_auc_folds": fold_aucs,
        "cv_auc_pooled": float(roc_auc_score(y, oof)),
        "cv_auc_pooled_ci95": [low, high],
        "cv_auc_ci_method": f"patient-level bootstrap, {options.bootstrap} resamples, percentile",
        "cv_brier_pooled": float(brier_score_loss(y, oof)),
        "threshold": threshold,
        "threshold_method": "Youden's J on the pooled out-of-fold probabilities",
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "sensitivity": float(tp / (tp + fn)) if tp + fn else None,
        "specificity": float(tn / (tn + fp)) if tn + fp else None,
    }


def folded_pipeline(model: CalibratedClassifierCV) -> Pipeline:
    """The calibrated model as one scaler + logistic regression.

    Platt scaling maps the decision value f = w·z + b to 1 / (1 + exp(a·f + c)), which is a
    logistic regression with coefficients −a·w and intercept −a·b − c."""
    calibrated = model.calibrated_classifiers_[0]
    base, sigmoid = calibrated.estimator, calibrated.calibrators[0]
    logreg = base.named_steps["logreg"]
    folded = LogisticRegression()
    folded.classes_ = logreg.classes_
    folded.coef_ = -sigmoid.a_ * logreg.coef_
    folded.intercept_ = -sigmoid.a_ * logreg.intercept_ - sigmoid.b_
    folded.n_features_in_ = logreg.n_features_in_
    return Pipeline([("scale", base.named_steps["scale"]), ("logreg", folded)])


def linear_explanation(model: CalibratedClassifierCV, names: list[str]) -> dict:
    """The exported model as logit = intercept + Σ coefficient · (x − mean) / scale, so the
    service can list each lesion's top contributing features (coefficient × standardised
    value, in logit units)."""
    folded = folded_pipeline(model)
    scale, logreg = folded.named_steps["scale"], folded.named_steps["logreg"]
    return {
        "intercept": float(logreg.intercept_[0]),
        "terms": {
            name: {"coefficient": float(c), "mean": float(m), "scale": float(s)}
            for name, c, m, s in zip(names, logreg.coef_[0], scale.mean_, scale.scale_, strict=True)
        },
    }


def robustness_classes(icc: pd.DataFrame, names: list[str]) -> dict:
    """location → feature → ICC class for the selected features (rows with a class only),
    so each lesion result can state how reproducible its features are where it sits."""
    table: dict[str, dict[str, str]] = {}
    rows = icc[icc["feature"].isin(names) & icc["class"].notna()]
    for location, feature, klass in zip(rows["location"], rows["feature"], rows["class"], strict=True):
        table.setdefault(str(location), {})[str(feature)] = str(klass)
    return {loc: dict(sorted(classes.items())) for loc, classes in sorted(table.items())}


def export_onnx(model, x: np.ndarray, name: str) -> tuple[bytes, float]:
    export = folded_pipeline(model)
    onx = convert_sklearn(
        export,
        initial_types=[(INPUT_NAME, FloatTensorType([None, x.shape[1]]))],
        options={id(export.named_steps["logreg"]): {"zipmap": False}},
        target_opset=ONNX_OPSET,
    )
    onx.graph.name = name  # fixed name: byte-identical rebuilds
    data = onx.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0][:, 1]
    diff = float(np.max(np.abs(got - model.predict_proba(x)[:, 1])))
    if diff > ONNX_TOLERANCE:
        raise SystemExit(f"ONNX export differs from scikit-learn by {diff} (> {ONNX_TOLERANCE})")
    return data, diff


def plot_roc(y, oof, metrics: dict, path: Path) -> None:
    fpr, tpr, _ = roc_curve(y, oof)
    low, high = metrics["cv_auc_pooled_ci95"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"AUC {metrics['cv_auc_pooled']:.3f} (95 % CI {low:.3f}–{high:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="ROC, out-of-fold")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_calibration(y, oof, path: Path) -> None:
    observed, predicted = calibration_curve(y, oof, n_bins=CALIBRATION_BINS, strategy="quantile")
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed responder fraction",
           title=f"Calibration, out-of-fold ({CALIBRATION_BINS} quantile bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(metrics: dict, path: Path) -> None:
    cm = metrics["confusion_matrix"]
    grid = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=14)
    ax.set_xticks([0, 1], ["non-responder", "responder"])
    ax.set_yticks([0, 1], ["non-responder", "responder"])
    ax.set(xlabel="predicted", ylabel="observed",
           title=f"threshold {metrics['threshold']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(path: Path, manifest: dict, selection: dict) -> None:
    m = manifest["metrics"]
    cm = m["confusion_matrix"]
    low, high = m["cv_auc_pooled_ci95"]
    lines = [
        f"# {manifest['name']} {manifest['version']}",
        "",
        manifest["intended_use"],
        "",
        "## Data",
        f"{manifest['training_data']['n_lesions']} lesions of "
        f"{manifest['training_data']['n_patients']} patients, "
        f"{manifest['training_data']['n_positive']} responders; fingerprint "
        f"`{manifest['training_data']['fingerprint']}`; settings hash `{manifest['settings_hash']}`.",
        "",
        "## Feature selection",
        f"- robustness: classes {', '.join(selection['accept'])} at every assessed location "
        f"({', '.join(selection['assessed_locations'])}); not assessed: "
        f"{', '.join(selection['not_assessed_locations']) or 'none'}; "
        f"{selection['n_robust']} of {selection['n_candidates']} features kept",
        f"- redundancy: |Spearman ρ| ≥ {selection['max_abs_corr']} clustered; "
        f"{len(manifest['feature_names'])} features selected: "
        + ", ".join(f"`{n}`" for n in manifest["feature_names"]),
        "",
        "## Performance (out-of-fold)",
        f"- validation: {m['validation']}",
        f"- ROC AUC pooled {m['cv_auc_pooled']:.3f} (95 % CI {low:.3f}–{high:.3f}, "
        f"{m['cv_auc_ci_method']}); per fold {m['cv_auc_mean']:.3f} ± {m['cv_auc_std']:.3f}",
        f"- Brier score {m['cv_brier_pooled']:.3f}",
        f"- threshold {m['threshold']:.3f} ({m['threshold_method']}): TN {cm['tn']}, FP {cm['fp']}, "
        f"FN {cm['fn']}, TP {cm['tp']}; sensitivity {m['sensitivity']:.3f}, "
        f"specificity {m['specificity']:.3f}",
        "",
        "![ROC](roc.png) ![Calibration](calibration.png) ![Confusion matrix](confusion.png)",
        "",
    ]
    path.write_text("\n".join(lines))


def run(features: Path, icc_path: Path, meta_path: Path, out: Path, options: Options,
        acquisition: dict | None = None) -> dict:
    table, candidates = load_features(features)
    meta = json.loads(meta_path.read_text())
    icc = pd.read_csv(icc_path)

    robust = robust_features(candidates, icc, sorted(table["location"].unique()), options.accept)
    if not robust["kept"]:
        raise SystemExit("no feature passes the robustness filter")
    selected, clusters = drop_redundant(table, robust, options.max_abs_corr)

    x = table[selected].to_numpy(dtype=np.float64)
    y = table["outcome"].to_numpy(dtype=int)
    groups = table["patient_id"].astype(str).to_numpy()
    oof, fold_of = cross_validate(x, y, groups, options)
    metrics = evaluate(y, oof, fold_of, groups, options)

    model = fit(x, y, groups, options)
    onnx_bytes, diff = export_onnx(model, x, options.name)
    metrics["onnx_vs_sklearn_max_abs_diff"] = diff
    metrics["model"] = (f"StandardScaler + LogisticRegression(L2, C={options.c}), sigmoid-calibrated "
                        f"(CalibratedClassifierCV), {len(selected)} features")
    metrics["software"] = (f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, "
                           f"onnxruntime {ort.__version__}, numpy {np.__version__}")

    selection = {
        "accept": list(options.accept),
        "assessed_locations": robust["assessed_locations"],
        "not_assessed_locations": robust["not_assessed_locations"],
        "n_candidates": len(candidates),
        "n_robust": len(robust["kept"]),
        "max_abs_corr": options.max_abs_corr,
        "clusters": clusters,
        "icc_table_sha256": hashlib.sha256(icc_path.read_bytes()).hexdigest(),
    }
    manifest = {
        "manifest_version": 1,
        "name": options.name,
        "version": options.version,
        "synthetic_demo": options.synthetic_demo,
        "intended_use": options.intended_use,
        "feature_names": selected,
        "extraction_settings": meta["extraction_settings"],
        "settings_hash": meta["settings_hash"],
        "input": {"name": INPUT_NAME, "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "probability_column": 1,
                   "semantics": "P(responder), calibrated (column 1 of [P(non-responder), P(responder)])"},
        "training_data": {
            "description": f"{features.name}: {len(table)} lesions with outcome per lesion",
            "n_patients": int(len(np.unique(groups))),
            "n_lesions": int(len(y)),
            "n_positive": int(y.sum()),
            "fingerprint": "sha256:" + hashlib.sha256(features.read_bytes()).hexdigest(),
        },
        "training_ranges": {
            name: {"min": float(table[name].min()), "max": float(table[name].max())}
            for name in selected
        },
        "explanation": linear_explanation(model, selected),
        "robustness": robustness_classes(icc, selected),
        "feature_selection": selection,
        "metrics": metrics,
    }
    if acquisition is not None:
        manifest["acquisition"] = acquisition

    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    pd.DataFrame({
        "lesion_id": table["lesion_id"], "patient_id": groups, "fold": fold_of,
        "outcome": y, "probability": oof,
    }).to_csv(out / "oof_predictions.csv", index=False)
    plot_roc(y, oof, metrics, out / "roc.png")
    plot_calibration(y, oof, out / "calibration.png")
    plot_confusion(metrics, out / "confusion.png")
    write_report(out / "report.md", manifest, selection)
    return manifest


def location_groups(locations: list[str], groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Sub-model id -> locations: each `groups` entry, then every other location of the data
    alone under its own name. Exits on an unknown location, a location in two groups, or a
    group id that is also an ungrouped location's."""
    owner: dict[str, str] = {}
    for sub_id, locs in groups.items():
        if not make_bundle.ID_PATTERN.match(sub_id):
            raise SystemExit(f"location group {sub_id!r}: id must be 1-64 letters, digits, '_' or '-'")
        for loc in locs:
            if loc not in make_bundle.LOCATIONS:
                raise SystemExit(f"location group {sub_id!r}: {loc!r} is not one of "
                                 f"{sorted(make_bundle.LOCATIONS)}")
            if loc in owner:
                raise SystemExit(f"location {loc!r} is in groups {owner[loc]!r} and {sub_id!r}")
            owner[loc] = sub_id
    result = dict(groups)
    for loc in locations:
        if loc not in owner:
            if loc in result:
                raise SystemExit(f"location group id {loc!r} is also an ungrouped location")
            result[loc] = [loc]
    return result


def run_per_location(features: Path, icc_path: Path, meta_path: Path, out: Path, options: Options,
                     groups: dict[str, list[str]] | None = None,
                     acquisition: dict | None = None) -> dict:
    """Train one model per location group (see `location_groups`) on that group's rows and
    write the location bundle into `out`; returns the bundle manifest."""
    table = pd.read_csv(features)
    subs = []
    for sub_id, locations in location_groups(sorted(table["location"].unique()),
                                             groups or {}).items():
        rows = table[table["location"].isin(locations)]
        if rows.empty:
            raise SystemExit(f"location group {sub_id!r}: no rows at {locations}")
        sub_dir = out / "sub_models" / sub_id
        sub_dir.mkdir(parents=True, exist_ok=True)
        # The sub-model's own training data, so its fingerprint and ranges are of its rows.
        rows_csv = sub_dir / "training_rows.csv"
        rows.to_csv(rows_csv, index=False)
        sub_options = dataclasses.replace(options, name=f"{options.name}-{sub_id}")
        run(rows_csv, icc_path, meta_path, sub_dir, sub_options, acquisition)
        subs.append((sub_id, sub_dir, locations))
    return make_bundle.assemble(options.name, options.version, out, subs, options.intended_use)


def parse_group(spec: str) -> tuple[str, list[str]]:
    """ID=LOC[,LOC...] of --location-group."""
    sub_id, sep, locations = spec.partition("=")
    locs = [loc for loc in locations.split(",") if loc]
    if not sep or not locs:
        raise SystemExit(f"--location-group {spec!r}: expected ID=LOCATION[,LOCATION...]")
    return sub_id, locs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True)
    ap.add_argument("--icc", type=Path, required=True)
    ap.add_argument("--meta", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--accept", default="good,excellent", help="accepted robustness classes")
    ap.add_argument("--max-abs-corr", type=float, default=0.9)
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261204)
    ap.add_argument("--name", default="radscore-logreg")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--synthetic-demo", action="store_true")
    ap.add_argument("--intended-use", default=Options.intended_use)
    ap.add_argument("--acquisition", type=Path,
                    help="JSON file with the training series' acquisition envelope "
                         "(slice_thickness_mm / pixel_spacing_mm / kvp as {min, max}, "
                         "convolution_kernels, on_violation: warn|refuse), copied into the manifest")
    ap.add_argument("--per-location", action="store_true",
                    help="train one model per location (or --location-group) and write a "
                         "location bundle into --out")
    ap.add_argument("--location-group", action="append", default=[], metavar="ID=LOC[,LOC...]",
                    help="with --per-location: train these locations together as sub-model ID")
    a = ap.parse_args()
    if a.location_group and not a.per_location:
        ap.error("--location-group needs --per-location")
    options = Options(
        accept=tuple(s.strip() for s in a.accept.split(",") if s.strip()),
        max_abs_corr=a.max_abs_corr, c=a.c, folds=a.folds, bootstrap=a.bootstrap, seed=a.seed,
        name=a.name, version=a.version, synthetic_demo=a.synthetic_demo,
        intended_use=a.intended_use,
    )
    acquisition = json.loads(a.acquisition.read_text()) if a.acquisition else None
    if a.per_location:
        groups: dict[str, list[str]] = {}
        for spec in a.location_group:
            sub_id, locs = parse_group(spec)
            if sub_id in groups:
                raise SystemExit(f"--location-group {sub_id!r} given twice")
            groups[sub_id] = locs
        bundle = run_per_location(a.features, a.icc, a.meta, a.out, options, groups, acquisition)
        for sub in bundle["sub_models"]:
            m = sub["manifest"]["metrics"]
            print(f"{sub['id']} ({', '.join(sub['locations'])}): "
                  f"{len(sub['manifest']['feature_names'])} features; CV AUC {m['cv_auc_pooled']:.3f}")
        print(f"bundle {bundle['name']} {bundle['version']} -> {a.out}; "
              f"uncovered: {make_bundle.uncovered(bundle) or 'none'}")
        return
    manifest = run(a.features, a.icc, a.meta, a.out, options, acquisition)
    m = manifest["metrics"]
    print(f"{len(manifest['feature_names'])} features; CV AUC {m['cv_auc_pooled']:.3f} "
          f"(95 % CI {m['cv_auc_pooled_ci95'][0]:.3f}–{m['cv_auc_pooled_ci95'][1]:.3f}) -> {a.out}")


if __name__ == "__main__":
    main()
