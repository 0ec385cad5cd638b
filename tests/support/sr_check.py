"""Check a radscore DICOM SR measurement report with highdicom (an independent reader).

    sr_check.py --sr REPORT.dcm --expected EXPECTED.json --source-dir DIR
        [--segmentation SEG.dcm --segmentation-kind seg|rtstruct]

EXPECTED.json (written by tests/api/report.rs) holds `result` (the job's JSON result, GET
/v1/jobs/{id}/result) and `feature_codes` ({tag: {value, scheme, meaning, unit,
derivation}}, radscore's coding table). The source series and the segmentation are read
from the uploaded files themselves with pydicom.

Checks, failing with a message naming the lesion and feature:
  * patient and study attributes equal the source's (so a PACS files it with the images);
  * the file parses with highdicom.sr.srread as Comprehensive 3D SR, TID 1500 root
    (MeasurementReport.from_sequence), in the source study, in a new series;
  * the evidence lists every source instance and the segmentation;
  * one measurement group per lesion: tracking identifier and UID, finding Neoplasm,
    finding site = the SNOMED CT code of the location (hard-coded here), and for a SEG the
    Referenced Segment with the lesion's segment number and the source series UID;
  * the response probability and every feature value equal the JSON result exactly;
  * every IBSI code and meaning is one that DICOM PS3.16 registers (pydicom's dictionary),
    and the algorithm name/version are the result's model.
Prints "ok N lesions M measurements" on success.
"""

import argparse
import json
import sys

import pathlib

import highdicom as hd
import pydicom
from pydicom.sr._concepts_dict import concepts
from pydicom.sr.codedict import codes

# SNOMED CT finding sites per location, from PS3.16 (independent of radscore's table).
FINDING_SITES = {
    "pleura": "3120008",
    "lymph_node": "59441001",
    "peritoneum": "15425007",
    "soft_tissue": "87784001",
    "other": None,
}
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
RESPONSE_PROBABILITY = ("RESPPROB", "99RADSCORE")
ALGORITHM_NAME = "111001"
ALGORITHM_VERSION = "111003"
# Spot checks of the coding table against the IBSI 1 manual's identifiers.
IBSI_SPOT_CHECKS = {"morph_volume": "RNU0", "cm_contrast_3D_avg": "ACUI", "cm_joint_max_3D_comb": "GYBY"}


def fail(message):
    sys.exit(f"SR check failed: {message}")


def check(condition, message):
    if not condition:
        fail(message)


def ibsi_meanings():
    out = {}
    for entry in concepts["IBSI"].values():
        for code, (meaning, _) in entry.items():
            out[code] = meaning
    return out


def text_children(item, code_value):
    return [c.TextValue for c in getattr(item, "ContentSequence", [])
            if c.ConceptNameCodeSequence[0].CodeValue == code_value]


def read_sources(args):
    files = sorted(pathlib.Path(args.source_dir).glob("*.dcm"))
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    segmentation = None
    if args.segmentation:
        ds = pydicom.dcmread(args.segmentation, stop_before_pixels=True)
        segmentation = {"kind": args.segmentation_kind, "sop_instance_uid": ds.SOPInstanceUID,
                        "sop_class_uid": ds.SOPClassUID}
    return {"study_uid": source[0].StudyInstanceUID, "series_uid": source[0].SeriesInstanceUID,
            "instance_uids": [d.SOPInstanceUID for d in source], "first": source[0],
            "segmentation": segmentation}


def check_header(sr, expected):
    first = expected["first"]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        check(str(sr.get(keyword, "")) == str(first.get(keyword, "")),
              f"{keyword} is not the source's")
    check(sr.SOPClassUID == COMPREHENSIVE_3D_SR, f"SOP class {sr.SOPClassUID}")
    check(sr.Modality == "SR", f"modality {sr.Modality}")
    check(sr.StudyInstanceUID == expected["study_uid"], "study UID differs from the source")
    check(sr.SeriesInstanceUID != expected["series_uid"], "SR reuses the source series UID")
    evidence = {(s, se, i) for s, se, i, _ in sr.get_evidence(current_procedure_only=True)}
    for uid in expected["instance_uids"]:
        check((expected["study_uid"], expected["series_uid"], uid) in evidence,
              f"source instance {uid} missing from the evidence")
    seg = expected["segmentation"]
    if seg:
        check(any(i == seg["sop_instance_uid"] for _, _, i in evidence),
              "segmentation missing from the evidence")


def find_group(groups, lesion):
    prefix = f"lesion {lesion['label']}"
    found = [g for g in groups
             if g.tracking_identifier in (prefix, f"{prefix} {lesion['name']}")]
    check(len(found) == 1, f"{len(found)} measurement groups for {prefix}")
    return found[0]


def check_group(group, lesion, expected):
    label = lesion["label"]
    check(group.tracking_uid, f"lesion {label}: no tracking UID")
    check(group.finding_type == codes.SCT.Neoplasm, f"lesion {label}: finding {group.finding_type}")
    site = FINDING_SITES[lesion["location"]]
    sites = [s.value.value for s in group.finding_sites]
    check(sites == ([site] if site else []), f"lesion {label}: finding sites {sites}, want {site}")
    seg = expected["segmentation"]
    if seg and seg["kind"] == "seg":
        ref = group.referenced_segment
        check(ref is not None, f"lesion {label}: no Referenced Segment")
        sop = ref[0].ReferencedSOPSequence[0]
        check(sop.ReferencedSOPInstanceUID == seg["sop_instance_uid"], f"lesion {label}: SEG UID")
        check(int(sop.ReferencedSegmentNumber) == label, f"lesion {label}: segment number")
        series = [i.value for i in ref if i.name == codes.DCM.SourceSeriesForSegmentation]
        check(series == [expected["series_uid"]], f"lesion {label}: source series {series}")


def check_measurements(group, lesion, expected, ibsi):
    label = lesion["label"]
    by_key = {}
    for m in group.get_measurements():
        key = (m.name.value, m.name.scheme_designator,
               m.derivation.value if m.derivation is not None else None)
        check(key not in by_key, f"lesion {label}: measurement {key} repeated")
        by_key[key] = m
        if m.name.scheme_designator == "IBSI":
            check(ibsi.get(m.name.value) == m.name.meaning,
                  f"IBSI code {m.name.value} '{m.name.meaning}' is not PS3.16's '{ibsi.get(m.name.value)}'")

    model = expected["result"]["model"]
    prob = by_key.pop(RESPONSE_PROBABILITY + (None,), None)
    if lesion["response_probability"] is None:
        check(prob is None, f"lesion {label}: probability without a JSON value")
    else:
        check(prob is not None, f"lesion {label}: no response probability")
        check(prob.value == lesion["response_probability"],
              f"lesion {label}: probability {prob.value!r} != {lesion['response_probability']!r}")
        check(prob.unit.value == "1", f"lesion {label}: probability unit {prob.unit.value}")
        check(text_children(prob[0], ALGORITHM_NAME) == [model["name"]], "algorithm name")
        check(text_children(prob[0], ALGORITHM_VERSION) == [model["version"]], "algorithm version")

    for tag, value in lesion["features"].items():
        c = expected["feature_codes"][tag]
        if tag in IBSI_SPOT_CHECKS:
            check(c["value"] == IBSI_SPOT_CHECKS[tag] and c["scheme"] == "IBSI", f"{tag} coded {c}")
        m = by_key.pop((c["value"], c["scheme"], c["derivation"]), None)
        check(m is not None, f"lesion {label}: feature {tag} missing")
        check(m.value == value, f"lesion {label}: {tag} {m.value!r} != {value!r}")
        check(m.unit.value == c["unit"], f"lesion {label}: {tag} unit {m.unit.value}")
    check(not by_key, f"lesion {label}: unexpected measurements {sorted(by_key)}")
    return len(lesion["features"]) + (prob is not None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sr", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--segmentation")
    ap.add_argument("--segmentation-kind", choices=["seg", "rtstruct"])
    args = ap.parse_args()
    expected = json.load(open(args.expected))
    expected.update(read_sources(args))

    sr = hd.sr.srread(args.sr)
    check_header(sr, expected)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    seg = expected["segmentation"]
    if seg:
        groups = report.get_volumetric_roi_measurement_groups()
    else:
        groups = report.get_image_measurement_groups()
    lesions = expected["result"]["lesions"]
    check(len(groups) == len(lesions), f"{len(groups)} groups for {len(lesions)} lesions")
    ibsi = ibsi_meanings()
    count = 0
    for lesion in lesions:
        group = find_group(groups, lesion)
        check_group(group, lesion, expected)
        count += check_measurements(group, lesion, expected, ibsi)
    print(f"ok {len(lesions)} lesions {count} measurements")


if __name__ == "__main__":
    main()
