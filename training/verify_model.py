"""Check that the Rust service scores exactly like the Python runtime.

For a few cohort patients, regenerate the case, run ``radscore extract --model <dir>``
(the service's own path: ort with load-dynamic, the manifest checks, the f64 → f32 cast)
and compare each lesion's ``response_probability`` with Python onnxruntime on the
feature vector that extract reported. Both run the same float32 graph on the same
float32 input, so they must agree to float32 rounding.

    .venv/bin/python training/verify_model.py --model models/demo
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
# Same graph, same input: only summation-order differences between builds are allowed.
TOLERANCE = 1e-6


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--radscore", default=str(ROOT / "target/debug/radscore"))
    ap.add_argument("--model", type=Path, default=ROOT / "models/demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    args = ap.parse_args()

    manifest = json.loads((args.model / "manifest.json").read_text())
    session = ort.InferenceSession(str(args.model / "model.onnx"), providers=["CPUExecutionProvider"])
    worst, checked = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="radscore-verify-") as tmp:
        for seed in args.seeds:
            case = Path(tmp) / f"case_{seed}"
            run([args.radscore, "demo-data", "--out", str(case), "--seed", str(seed)])
            truth = json.loads((case / "lesions.json").read_text())
            lesion_args = [a for l in truth["lesions"] for a in ("--lesion", f"{l['label']}:{l['location']}")]
            out = case / "scored.json"
            run([args.radscore, "extract", "--series", str(case / "series"), "--mask", str(case / "lesions.nii.gz"),
                 *lesion_args, "--model", str(args.model), "--out", str(out), "--quiet"])
            scored = json.loads(out.read_text())
            for lesion in scored["lesions"]:
                if lesion["status"] != "ok":
                    continue
                x = np.array([[lesion["features"][n] for n in manifest["feature_names"]]], dtype=np.float32)
                want = float(session.run([manifest["output"]["name"]], {manifest["input"]["name"]: x})[0][0, 1])
                got = lesion["response_probability"]
                if got is None:
                    sys.exit(f"seed {seed} label {lesion['label']}: no response_probability from radscore")
                worst = max(worst, abs(got - want))
                checked += 1
    if checked == 0:
        sys.exit("no lesion was scored")
    status = "OK" if worst <= TOLERANCE else "MISMATCH"
    print(f"{status}: {checked} lesions, max |radscore - onnxruntime| = {worst:.3g} (tolerance {TOLERANCE})")
    if worst > TOLERANCE:
        sys.exit(1)


if __name__ == "__main__":
    main()
