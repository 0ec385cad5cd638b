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
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from generate_cohort import ROOT, process_patient

# Same graph, same input: only summation-order differences between builds are allowed.
TOLERANCE = 1e-6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--radscore", default=str(ROOT / "target/debug/radscore"))
    ap.add_argument("--model", type=Path, default=ROOT / "models/demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    args = ap.parse_args()

    manifest = json.loads((args.model / "manifest.json").read_text())
    session = ort.InferenceSession(str(args.model / "model.onnx"))
    input_name, output_name = manifest["input"]["name"], manifest["output"]["name"]
    column = manifest["output"]["probability_column"]

    worst, checked = 0.0, 0
    with tempfile.TemporaryDirectory(prefix="radscore-verify-") as tmp:
        for seed in args.seeds:
            case = Path(tmp) / f"case_{seed}"
            _, scored = process_patient(args.radscore, case, seed, ("--model", str(args.model)))
            for lesion in (l for l in scored["lesions"] if l["status"] == "ok"):
                row = [lesion["features"][n] for n in manifest["feature_names"]]
                x = np.array([row], dtype=np.float32)
                want = float(session.run([output_name], {input_name: x})[0][0, column])
                got = lesion["response_probability"]
                if got is None:
                    sys.exit(f"seed {seed} label {lesion['label']}: radscore gave no probability")
                worst = max(worst, abs(got - want))
                checked += 1
    if checked == 0:
        sys.exit("no lesion was scored")
    status = "OK" if worst <= TOLERANCE else "MISMATCH"
    print(f"{status}: {checked} lesions, max |radscore - onnxruntime| = {worst:.3g} "
          f"(tolerance {TOLERANCE})")
    if worst > TOLERANCE:
        sys.exit(1)


if __name__ == "__main__":
    main()
