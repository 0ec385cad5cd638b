"""Build the synthetic training cohort of the demo model.

For each of N synthetic patients (seeds BASE .. BASE+N-1):

1. ``radscore demo-data --out <case> --seed <seed>`` writes a CT series, a label map and
   ``lesions.json`` with every lesion's location and latent generator parameters;
2. ``radscore extract --series <case>/series --mask <case>/lesions.nii.gz
   --lesion <label>:<location> ... --out features.json`` computes the radiomics features
   with the bundled settings, exactly as the service does;
3. each lesion gets a binary outcome from the rule below (latent parameters plus noise).

Outcome rule ("responder" = 1), documented here and copied into the manifest:

    score = - 0.9 * (radius_mm - 7.5) / 2.0          # smaller lesions respond more often
            - 0.8 * (heterogeneity_hu - 22.5) / 10.0 # homogeneous lesions respond more often
            + 0.6 * (mean_hu - 50.0) / 20.0          # denser (enhancing) lesions respond more
            - 0.7 * (shape_irregularity - 0.15) / 0.09  # irregular lesions respond less
            + LOCATION_OFFSET[location]              # pleura +0.3, others -0.3 / 0 (below)
            + noise,  noise ~ Normal(0, 1)           # drawn from numpy's PCG64(OUTCOME_SEED)
    outcome = 1 if score > 0 else 0

The features never see the latent parameters directly: the model must recover them from
morphology, intensity and texture features, as a real model would.

Outputs (in --out-dir, default training/data/):
  cohort.csv         patient_id, seed, lesion_id, label, location, outcome, <features...>
  cohort_latent.csv  lesion_id and the latent parameters (for audit, never for training)
  cohort_meta.json   feature names, settings object and hash, the rule, counts

    .venv/bin/python training/generate_cohort.py --radscore target/debug/radscore
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# The outcome rule; see the module docstring. Scales are about one standard deviation of
# each latent parameter over the generator's uniform ranges (src/demo.rs).
OUTCOME_RULE = {
    "intercept": 0.0,
    "terms": [
        # (latent parameter, centre, scale, weight)
        ["radius_mm", 7.5, 2.0, -0.9],
        ["heterogeneity_hu", 22.5, 10.0, -0.8],
        ["mean_hu", 50.0, 20.0, 0.6],
        ["shape_irregularity", 0.15, 0.09, -0.7],
    ],
    "location_offset": {"pleura": 0.3, "lymph_node": -0.3, "peritoneum": -0.3, "soft_tissue": 0.0},
    "noise_sd": 1.0,
    "threshold": 0.0,
}
LATENT_COLUMNS = ["radius_mm", "shape_irregularity", "mean_hu", "heterogeneity_hu"]
OUTCOME_SEED = 20261204


def run(cmd: list[str]) -> str:
    """Run a radscore command; stop with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


def outcome_score(lesion: dict, noise: float) -> float:
    rule = OUTCOME_RULE
    score = rule["intercept"] + rule["location_offset"].get(lesion["location"], 0.0)
    for name, centre, scale, weight in rule["terms"]:
        score += weight * (lesion[name] - centre) / scale
    return score + rule["noise_sd"] * noise


def process_patient(
    radscore: str, case_dir: Path, seed: int, extra_args: tuple[str, ...] = ()
) -> tuple[dict, dict]:
    """Generate one patient and extract its lesions with their true locations.

    Returns (lesions.json, the extract output). `extra_args` go to `radscore extract`
    (e.g. `--model DIR`)."""
    run([radscore, "demo-data", "--out", str(case_dir), "--seed", str(seed)])
    truth = json.loads((case_dir / "lesions.json").read_text())
    lesion_args = []
    for lesion in truth["lesions"]:
        lesion_args += ["--lesion", f"{lesion['label']}:{lesion['location']}"]
    out = case_dir / "features.json"
    run([
        radscore, "extract", "--series", str(case_dir / "series"),
        "--mask", str(case_dir / "lesions.nii.gz"), *lesion_args,
        "--out", str(out), "--quiet", *extra_args,
    ])
    return truth, json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--radscore", default=str(ROOT / "target/debug/radscore"))
    ap.add_argument("--patients", type=int, default=150, help="number of synthetic patients")
    ap.add_argument("--seed-base", type=int, default=1000, help="seed of the first patient")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "training/data")
    ap.add_argument("--keep-cases", type=Path, default=None, help="keep the generated cases here")
    args = ap.parse_args()

    names = run([args.radscore, "settings", "--print", "names"]).split()
    settings = json.loads(run([args.radscore, "settings", "--print", "json"]))
    settings_hash = run([args.radscore, "settings", "--print", "hash"]).strip()

    rng = np.random.Generator(np.random.PCG64(OUTCOME_SEED))
    rows, latent_rows, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="radscore-cohort-") as tmp:
        base = args.keep_cases or Path(tmp)
        for i in range(args.patients):
            seed = args.seed_base + i
            truth, extracted = process_patient(args.radscore, base / f"case_{seed}", seed)
            if extracted["settings_hash"] != settings_hash or extracted["feature_names"] != names:
                sys.exit(f"seed {seed}: extract used other settings than `radscore settings`")
            by_label = {r["label"]: r for r in extracted["lesions"]}
            for lesion in truth["lesions"]:
                # One noise draw per generated lesion, also for skipped ones, so the
                # outcomes do not depend on which lesions the extractor accepts.
                noise = float(rng.standard_normal())
                lesion_id = f"{truth['patient_id']}-L{lesion['label']}"
                result = by_label.get(lesion["label"])
                if result is None or result["status"] != "ok":
                    reason = "missing" if result is None else result["status"]
                    if result is not None and result.get("error"):
                        reason = result["error"]
                    skipped.append({"lesion_id": lesion_id, "reason": reason})
                    continue
                values = [result["features"][n] for n in names]
                if not all(math.isfinite(v) for v in values):
                    skipped.append({"lesion_id": lesion_id, "reason": "non-finite feature"})
                    continue
                outcome = int(outcome_score(lesion, noise) > OUTCOME_RULE["threshold"])
                ids = [truth["patient_id"], seed, lesion_id, lesion["label"], lesion["location"]]
                rows.append([*ids, outcome, *values])
                latent_rows.append([lesion_id, *[lesion[c] for c in LATENT_COLUMNS]])
            if (i + 1) % 25 == 0 or i + 1 == args.patients:
                print(f"patients: {i + 1}/{args.patients}, lesions: {len(rows)}", file=sys.stderr)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    with open(args.out_dir / "cohort.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["patient_id", "seed", "lesion_id", "label", "location", "outcome", *names])
        for row in rows:
            w.writerow([*row[:6], *[repr(float(v)) for v in row[6:]]])
    with open(args.out_dir / "cohort_latent.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["lesion_id", *LATENT_COLUMNS])
        w.writerows(latent_rows)

    meta = {
        "feature_names": names,
        "extraction_settings": settings,
        "settings_hash": settings_hash,
        "patients": args.patients,
        "seed_base": args.seed_base,
        "lesions": len(rows),
        "positives": sum(r[5] for r in rows),
        "skipped": skipped,
        "outcome_rule": OUTCOME_RULE,
        "outcome_seed": OUTCOME_SEED,
        "generator": "radscore demo-data (src/demo.rs), default options",
    }
    (args.out_dir / "cohort_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"cohort: {args.patients} patients, {len(rows)} lesions ({meta['positives']} responders), "
        f"{len(skipped)} skipped -> {args.out_dir / 'cohort.csv'}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
