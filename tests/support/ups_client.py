"""A UPS-RS client (python `requests`, DICOM JSON by hand) against a running radscore.

    ups_client.py --base URL --key KEY --series-id ID --segmentation-id ID --mode complete|cancel

complete: create a work item on the series and segmentation (RetrieveURLs, lesion location
    parameter `pleura`), follow it with GET until COMPLETED, check its Output Information
    references the SR that GET /v1/jobs/{id}/result.dcm serves (read with pydicom), and
    that a ProcedureStepState search finds it.
cancel (no workers running): create one, find it SCHEDULED by search, have IN PROGRESS
    refused (409), cancel it with PUT .../state, have a second cancel refused (409).
Prints a JSON summary on stdout; exits non-zero with a message on any failure.
"""

import argparse
import io
import json
import sys
import time

import pydicom
import requests

DICOM_JSON = "application/dicom+json"
TIMEOUT_S = 120
STATE = "00741000"


def fail(message):
    sys.exit(f"ups client failed: {message}")


def expect(resp, status):
    if resp.status_code != status:
        fail(f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:500]}")
    return resp


def value(dataset, tag):
    return dataset[tag]["Value"][0]


def workitem_body(series_id, seg_id, location):
    item = lambda url: {"00081190": {"vr": "UR", "Value": [url]}}
    return [{
        "00741000": {"vr": "CS", "Value": ["SCHEDULED"]},
        "00404021": {"vr": "SQ", "Value": [item(f"/v1/series/{series_id}"),
                                           item(f"/v1/segmentations/{seg_id}")]},
        "00741210": {"vr": "SQ", "Value": [{
            "0040A040": {"vr": "CS", "Value": ["TEXT"]},
            "0040A043": {"vr": "SQ", "Value": [{
                "00080100": {"vr": "SH", "Value": ["LESLOC"]},
                "00080102": {"vr": "SH", "Value": ["99RADSCORE"]},
                "00080104": {"vr": "LO", "Value": ["Lesion location"]}}]},
            "0040A160": {"vr": "UT", "Value": [location]}}]},
    }]


def create(session, base, args):
    resp = expect(session.post(f"{base}/workitems",
                               data=json.dumps(workitem_body(args.series_id,
                                                             args.segmentation_id, "pleura")),
                               headers={"Content-Type": DICOM_JSON}), 201)
    if resp.headers["Content-Type"] != DICOM_JSON:
        fail(f"create answered {resp.headers['Content-Type']}")
    location = resp.headers["Location"]
    uid = value(resp.json()[0], "00080018")
    if location != f"/workitems/{uid}":
        fail(f"Location {location} does not name {uid}")
    return uid


def retrieve(session, base, uid):
    items = expect(session.get(f"{base}/workitems/{uid}"), 200).json()
    if len(items) != 1 or value(items[0], "00080018") != uid:
        fail(f"retrieve {uid}: {items}")
    return items[0]


def search(session, base, state):
    resp = session.get(f"{base}/workitems", params={"ProcedureStepState": state})
    if resp.status_code == 204:
        return []
    return [value(i, "00080018") for i in expect(resp, 200).json()]


def job_of(item):
    """The job id, from the SSE Contact URI the work item carries."""
    progress = item["00741002"]["Value"][0]
    uri = value(progress["00741008"]["Value"][0], "0074100A")
    if not uri.startswith("/v1/jobs/") or not uri.endswith("/events"):
        fail(f"contact URI {uri}")
    return uri.split("/")[3], progress


def complete(session, base, args):
    uid = create(session, base, args)
    started = time.monotonic()
    states = []
    while True:
        item = retrieve(session, base, uid)
        state = value(item, STATE)
        if not states or states[-1] != state:
            states.append(state)
        if state == "COMPLETED":
            break
        if state == "CANCELED" or time.monotonic() - started > TIMEOUT_S:
            fail(f"work item {uid} ended {state}: {item}")
        time.sleep(0.2)
    job_id, progress = job_of(item)
    output = item["00404033"]["Value"][0]
    sr_uid = value(output["00081199"]["Value"][0], "00081155")
    report = expect(session.get(f"{base}{value(output, '00081190')}"), 200)
    sr = pydicom.dcmread(io.BytesIO(report.content))
    if sr.SOPInstanceUID != sr_uid or sr.SeriesInstanceUID != value(output, "0020000E"):
        fail(f"output references {sr_uid}, result.dcm is {sr.SOPInstanceUID}")
    job = expect(session.get(f"{base}/v1/jobs/{job_id}"), 200).json()
    if uid not in search(session, base, "COMPLETED") or uid in search(session, base, "SCHEDULED"):
        fail("search by ProcedureStepState does not find the completed work item")
    return {"uid": uid, "states": states, "job": job, "progress": value(progress, "00741004"),
            "sr_uid": sr_uid}


def cancel(session, base, args):
    uid = create(session, base, args)
    scheduled = uid in search(session, base, "SCHEDULED")
    state_url = f"{base}/workitems/{uid}/state"
    body = lambda s: json.dumps([{STATE: {"vr": "CS", "Value": [s]}}])
    headers = {"Content-Type": DICOM_JSON}
    refused = expect(session.put(state_url, data=body("IN PROGRESS"), headers=headers), 409).json()
    item = expect(session.put(state_url, data=body("CANCELED"), headers=headers), 200).json()[0]
    again = expect(session.put(state_url, data=body("CANCELED"), headers=headers), 409).json()
    job_id, progress = job_of(retrieve(session, base, uid))
    job = expect(session.get(f"{base}/v1/jobs/{job_id}"), 200).json()
    return {"uid": uid, "scheduled_found": scheduled, "refused": refused,
            "state": value(item, STATE), "again": again, "job": job,
            "reason": value(progress, "00741238"),
            "canceled_found": uid in search(session, base, "CANCELED")}


def main():
    ap = argparse.ArgumentParser()
    for name in ("--base", "--key", "--series-id", "--segmentation-id", "--mode"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {args.key}"
    run = {"complete": complete, "cancel": cancel}[args.mode]
    print(json.dumps(run(session, args.base, args)))


if __name__ == "__main__":
    main()
