#!/usr/bin/env python3
"""Assemble a location-aware model bundle (docs/model-bundles.md) from model directories.

    make_bundle.py --name NAME --version VERSION --out DIR \
        --sub pleura=models/pleura:pleura \
        --sub rest=models/rest:other,soft_tissue [--intended-use TEXT]

Each --sub is ID=MODEL_DIR:LOCATION[,LOCATION...]; MODEL_DIR holds model.onnx and
manifest.json as training/pipeline.py writes them (train each on the rows of its
locations, e.g. a features CSV filtered by its `location` column). DIR receives
manifest.json (bundle_version 1, each sub-model's manifest embedded with the sha256 of its
graph) and <ID>.onnx per sub-model, ready for POST /v1/models with parts
`manifest` and `model.<ID>`.

The checks the service makes again are made here first, so a bad bundle fails before
upload: ids, disjoint locations, one shared settings hash. `training/pipeline.py
--per-location` trains the sub-models and calls `assemble` itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

LOCATIONS = {"pleura", "lymph_node", "peritoneum", "soft_tissue", "other"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_sub(spec: str):
    try:
        sub_id, rest = spec.split("=", 1)
        model_dir, locations = rest.rsplit(":", 1)
    except ValueError:
        raise SystemExit(f"--sub {spec!r}: expected ID=MODEL_DIR:LOCATION[,LOCATION...]")
    if not ID_PATTERN.match(sub_id):
        raise SystemExit(f"--sub {spec!r}: id must be 1-64 letters, digits, '_' or '-'")
    locs = [l for l in locations.split(",") if l]
    unknown = [l for l in locs if l not in LOCATIONS]
    if not locs or unknown:
        raise SystemExit(f"--sub {spec!r}: locations must be among {sorted(LOCATIONS)}")
    return sub_id, Path(model_dir), locs


def assemble(name: str, version: str, out: Path, subs: list[tuple[str, Path, list[str]]],
             intended_use: str | None = None) -> dict:
    """Write the bundle for `subs` (id, model directory, locations) into `out`: manifest.json
    and <id>.onnx per sub-model; returns the bundle manifest. Exits with a message on a bad
    bundle (repeated id, location in two sub-models, differing settings hashes)."""
    bundled, owner, hashes = [], {}, set()
    out.mkdir(parents=True, exist_ok=True)
    for sub_id, model_dir, locations in subs:
        if any(s["id"] == sub_id for s in bundled):
            raise SystemExit(f"sub-model id {sub_id!r} appears twice")
        for loc in locations:
            if loc in owner:
                raise SystemExit(f"location {loc!r} is covered by {owner[loc]!r} and {sub_id!r}")
            owner[loc] = sub_id
        manifest = json.loads((model_dir / "manifest.json").read_text())
        hashes.add(manifest["settings_hash"])
        graph = (model_dir / "model.onnx").read_bytes()
        shutil.copyfile(model_dir / "model.onnx", out / f"{sub_id}.onnx")
        bundled.append({
            "id": sub_id,
            "locations": locations,
            "sha256": "sha256:" + hashlib.sha256(graph).hexdigest(),
            "manifest": manifest,
        })
    if len(hashes) != 1:
        raise SystemExit(f"sub-models use different settings hashes: {sorted(hashes)}")
    synthetic = any(s["manifest"].get("synthetic_demo", False) for s in bundled)
    bundle = {
        "bundle_version": 1,
        "name": name,
        "version": version,
        "synthetic_demo": synthetic,
        "intended_use": intended_use
        or "; ".join(f"{s['id']}: {s['manifest']['intended_use']}" for s in bundled),
        "sub_models": bundled,
    }
    (out / "manifest.json").write_text(json.dumps(bundle, indent=2))
    return bundle


def uncovered(bundle: dict) -> list[str]:
    """The locations no sub-model of `bundle` covers."""
    covered = {loc for s in bundle["sub_models"] for loc in s["locations"]}
    return sorted(LOCATIONS - covered)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sub", action="append", required=True)
    ap.add_argument("--intended-use", default=None)
    a = ap.parse_args()

    bundle = assemble(a.name, a.version, a.out, [parse_sub(spec) for spec in a.sub],
                      a.intended_use)
    print(f"bundle {a.name} {a.version}: {len(bundle['sub_models'])} sub-models; "
          f"uncovered: {uncovered(bundle) or 'none'}")


if __name__ == "__main__":
    main()
