#!/usr/bin/env python3
"""Copy a DICOM series with hostile edits (radscore test helper).

    edit_dicom.py --in-dir DIR --out-dir DIR [--set KEYWORD=VALUE ...]
                  [--set-first KEYWORD=VALUE ...] [--position-vr VR    store ImagePositionPatient of the first file with a binary integer VR
                    (e.g. US), each coordinate as its magnitude modulo 2^16
--nest-depth N] [--huge-pixel-length]
                  [--duplicate-sop-uid] [--rows-vr VR] [--position-vr VR]

--set               set a data element by keyword in every file, written raw as text
                    (e.g. BitsStored=0, RescaleSlope=NaN)
--set-first         the same, in the first file only (e.g. PatientID=OTHER, SamplesPerPixel=3)
--duplicate-sop-uid the first file takes the SOPInstanceUID of the second (a conflicting
                    duplicate: same UID, another position)
--rows-vr VR        store Rows of the first file with another VR (e.g. LO), as decimal text
--nest-depth N      insert N nested undefined-length private sequences before Pixel Data
--huge-pixel-length declare a 0xFFFFFFF0-byte Pixel Data length in the first file
"""
import argparse
import pathlib
import struct

import pydicom


def nested(depth):
    open_ = b"\x09\x00\x10\x10SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    close = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return open_ * depth + close * depth


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--in-dir", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--nest-depth", type=int)
    ap.add_argument("--huge-pixel-length", action="store_true")
    ap.add_argument("--set-first", action="append", default=[])
    ap.add_argument("--duplicate-sop-uid", action="store_true")
    ap.add_argument("--rows-vr")
    ap.add_argument("--position-vr")
    args = ap.parse_args()
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(pathlib.Path(args.in_dir).glob("*.dcm"))
    second_uid = pydicom.dcmread(paths[1]).SOPInstanceUID if len(paths) > 1 else None
    for n, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        for item in args.set + (args.set_first if n == 0 else []):
            key, value = item.split("=", 1)
            elem = ds[key]
            elem.value = value if elem.VR in ("DS", "IS", "UI", "LO", "SH", "PN", "CS") else int(value)
        if n == 0 and args.duplicate_sop_uid:
            ds.SOPInstanceUID = second_uid
            ds.file_meta.MediaStorageSOPInstanceUID = second_uid
        if n == 0 and args.rows_vr:
            text = str(ds.Rows)
            ds.add_new(0x00280010, args.rows_vr, text)
        if n == 0 and args.position_vr:
            ipp = [int(abs(float(v))) % 65536 for v in ds.ImagePositionPatient]
            ds.add_new(0x00200032, args.position_vr, ipp)
        target = out / path.name
        ds.save_as(target)
        data = target.read_bytes()
        marker = b"\xe0\x7f\x10\x00OW"
        i = data.rfind(marker)
        if args.nest_depth and n == 0:
            data = data[:i] + nested(args.nest_depth) + data[i:]
        if args.huge_pixel_length and n == 0:
            data = data[: i + 8] + struct.pack("<I", 0xFFFFFFF0) + data[i + 12 :]
        target.write_bytes(data)


if __name__ == "__main__":
    main()
