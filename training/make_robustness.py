"""Per-location feature robustness of the synthetic cohort, for training/pipeline.py.

Regenerates the first N cohort patients (`radscore demo-data`, the seeds of
generate_cohort.py), writes a robustness manifest with each lesion's true location and
runs `radscore robustness` on it. Copies robustness.csv and robustness.png into --out-dir.

    .venv/bin/python training/make_robustness.py --radscore target/debug/radscore
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from generate_cohort import ROOT, run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--radscore", default=str(ROOT / "target/debug/radscore"))
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--seed-base", type=int, default=1000)
    ap.add_argument("--perturbations", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=ROOT / "training/data")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="radscore-robustness-") as tmp:
        base = Path(tmp)
        cases = []
        for i in range(args.patients):
            seed = args.seed_base + i
            case = base / f"case_{seed}"
            run([args.radscore, "demo-data", "--out", str(case), "--seed", str(seed)])
            truth = json.loads((case / "lesions.json").read_text())
            cases.append({
                "id": f"case-{seed}",
                "series": f"case_{seed}/series",
                "mask": f"case_{seed}/lesions.nii.gz",
                "lesions": [{"label": l["label"], "location": l["location"]} for l in truth["lesions"]],
            })
        (base / "manifest.json").write_text(json.dumps({"cases": cases}))
        print(run([
            args.radscore, "robustness", "--manifest", str(base / "manifest.json"),
            "--out-dir", str(base / "out"), "--perturbations", str(args.perturbations),
            "--seed", str(args.seed), "--quiet",
        ]).strip())
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name in ["robustness.csv", "robustness.png"]:
            shutil.copy(base / "out" / name, args.out_dir / name)


if __name__ == "__main__":
    main()
