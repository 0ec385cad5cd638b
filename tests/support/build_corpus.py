#!/usr/bin/env python3
"""Build the segmentation upload corpus described by tests/data/segmentation_corpus.json.

    build_corpus.py --table tests/data/segmentation_corpus.json --shared SHARED --out-dir DIR

Each case's file is written to DIR/<name>. A case is made by one of:
  "copy": a path             copied as is
  "text": a string           written as UTF-8
  "build": [script, args...] a tests/support script run with the placeholders filled in;
                             with "pick", the script writes several files into {dir} and
                             the one named is taken (each distinct command runs once)
then optionally "gunzip": true (inflate the file) and "edit": a list of
{"truncate": N} / {"replace": [old, new]} / {"append": text} / {"poke": [offset, hex]}
(overwrite the bytes at offset) applied to its bytes in order.
"""
import argparse
import gzip
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()
    out_dir = pathlib.Path(args.out_dir)
    scratch = pathlib.Path(tempfile.mkdtemp(dir=out_dir))
    shared = pathlib.Path(args.shared)
    places = {
        "{shared}": str(shared),
        "{series}": str(shared / "ibsi1/ct_phantom/dicom/image"),
        "{mask}": str(shared / "ibsi1/ct_phantom/nifti/mask/mask.nii.gz"),
    }
    ran = {}
    for case in json.loads(pathlib.Path(args.table).read_text())["cases"]:
        out = out_dir / case["name"]

        def fill(text, case_dir=None):
            for key, value in {**places, "{out}": str(out), "{dir}": str(case_dir)}.items():
                text = text.replace(key, value)
            return text

        if "copy" in case:
            shutil.copyfile(fill(case["copy"]), out)
        elif "text" in case:
            out.write_text(case["text"])
        else:
            script, *rest = case["build"]
            key = json.dumps(case["build"])
            if "pick" in case:
                case_dir = ran.get(key)
                if case_dir is None:
                    case_dir = scratch / str(len(ran))
                    case_dir.mkdir()
                    run(script, [fill(a, case_dir) for a in rest])
                    ran[key] = case_dir
                shutil.copyfile(case_dir / case["pick"], out)
            else:
                run(script, [fill(a) for a in rest])
        data = out.read_bytes()
        if case.get("gunzip"):
            data = gzip.decompress(data)
        for edit in case.get("edit", []):
            if "truncate" in edit:
                data = data[: edit["truncate"]]
            elif "append" in edit:
                data = data + edit["append"].encode()
            elif "poke" in edit:
                at, raw = edit["poke"][0], bytes.fromhex(edit["poke"][1])
                data = data[:at] + raw + data[at + len(raw):]
            else:
                old, new = (s.encode() for s in edit["replace"])
                if old not in data:
                    sys.exit(f"{case['name']}: '{edit['replace'][0]}' not in the file")
                data = data.replace(old, new, 1)
        out.write_bytes(data)
    shutil.rmtree(scratch)


def run(script, args):
    done = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{script} {' '.join(args)} failed:\n{done.stderr}")


if __name__ == "__main__":
    main()
