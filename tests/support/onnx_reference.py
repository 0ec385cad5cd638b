#!/usr/bin/env python3
"""Score feature vectors with Python onnxruntime (independent reference for radscore tests).

    onnx_reference.py --model model.onnx --manifest manifest.json --features rows.json

rows.json: a JSON list of {feature_name: value} objects. Prints a JSON list of P(class 1),
reading the input name, output name and probability column from the manifest.
"""
import argparse
import json

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--features", required=True)
    args = ap.parse_args()

    manifest = json.load(open(args.manifest))
    names = manifest["feature_names"]
    rows = json.load(open(args.features))
    x = np.array([[row[n] for n in names] for row in rows], dtype=np.float32)
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    inp = manifest["input"]["name"]
    out = manifest["output"]["name"]
    col = manifest["output"]["probability_column"]
    probs = sess.run([out], {inp: x})[0]
    print(json.dumps([float(p[col]) for p in probs]))


if __name__ == "__main__":
    main()
