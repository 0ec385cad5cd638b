#!/usr/bin/env python3
"""Copy DICOM files with recognisable fake patient identifiers (radscore PHI test helper).

    set_identifiers.py --in-dir DIR --out-dir DIR KEYWORD=VALUE [KEYWORD=VALUE ...]

Every `*.dcm` file of --in-dir is written to --out-dir (same name) with each KEYWORD (a
DICOM attribute keyword such as PatientName, OtherPatientIDs) set to VALUE, added when
the file lacks it. The values are fake: the test greps every output channel for them.
"""
import argparse
import pathlib
import warnings

import pydicom


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("assignments", nargs="+", metavar="KEYWORD=VALUE")
    args = ap.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pairs = [a.split("=", 1) for a in args.assignments]
    files = sorted(pathlib.Path(args.in_dir).glob("*.dcm"))
    if not files:
        raise SystemExit(f"no .dcm files in {args.in_dir}")
    for path in files:
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            # OtherPatientIDs is retired in the standard; pydicom warns but writes it.
            warnings.simplefilter("ignore")
            for keyword, value in pairs:
                setattr(ds, keyword, value)
        ds.save_as(out / path.name)
    print(len(files))


if __name__ == "__main__":
    main()
