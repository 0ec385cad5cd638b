"""Build a Legacy Converted Enhanced CT Image (multi-frame) from classic CT slices.

    make_enhanced_ct.py --series DIR --out FILE [--limit N] [--shuffle SEED]
                        [--rescale-frame K] [--drop-position K]

highdicom.legacy.LegacyConvertedEnhancedCTImage copies each slice into one frame, with its
geometry in the per-frame (or shared) functional groups. --limit takes the first N files in
file-name order; --shuffle writes the frames in a seeded random order, so the reader must
order them by position, not by frame number. --rescale-frame gives frame K (0-based) its
own Pixel Value Transformation (intercept lowered by RESCALE_SHIFT, stored values raised by
as much: the same HU), so the reader must prefer per-frame rescale over the shared one.
--drop-position removes frame K's Plane Position, a fault the reader must name.
"""

import argparse
import pathlib
import random

import highdicom
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

# Series and instance numbers of the derived object (arbitrary, but fixed).
SERIES_NUMBER = 900
INSTANCE_NUMBER = 1
# Stored-value shift of --rescale-frame (the intercept moves the other way).
RESCALE_SHIFT = 10


def shared_rescale(ds):
    item = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    return float(item.RescaleSlope), float(item.RescaleIntercept)


def give_frame_own_rescale(ds, k):
    slope, intercept = shared_rescale(ds)
    transform = Dataset()
    transform.RescaleSlope = slope
    transform.RescaleIntercept = intercept - RESCALE_SHIFT * slope
    transform.RescaleType = "HU"
    ds.PerFrameFunctionalGroupsSequence[k].PixelValueTransformationSequence = [transform]
    pixels = ds.pixel_array.copy()
    pixels[k] = pixels[k] + RESCALE_SHIFT
    ds.PixelData = pixels.astype(pixels.dtype).tobytes()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--shuffle", type=int, default=None)
    ap.add_argument("--rescale-frame", type=int, default=None)
    ap.add_argument("--drop-position", type=int, default=None)
    args = ap.parse_args()

    files = sorted(pathlib.Path(args.series).glob("*.dcm"))
    if args.limit:
        files = files[: args.limit]
    slices = [pydicom.dcmread(f) for f in files]
    if args.shuffle is not None:
        random.Random(args.shuffle).shuffle(slices)
    enhanced = highdicom.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=slices,
        series_instance_uid=slices[0].SeriesInstanceUID,
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=INSTANCE_NUMBER,
    )
    if args.rescale_frame is not None:
        give_frame_own_rescale(enhanced, args.rescale_frame)
    if args.drop_position is not None:
        del enhanced.PerFrameFunctionalGroupsSequence[args.drop_position].PlanePositionSequence
    enhanced.save_as(args.out, enforce_file_format=True)


if __name__ == "__main__":
    main()
