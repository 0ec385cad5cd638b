"""End to end DICOMweb round trip: PACS -> radscore -> PACS, with a real Orthanc.

    unshare -n sh -c 'ip link set lo up && exec python push_e2e.py --radscore BIN
        --model-dir DIR --series-dir DIR --seg SEG.dcm --work-dir DIR'

Run in a fresh network namespace (only its own loopback exists): Orthanc 1.10 has no
listen-address option and binds every interface, so the namespace keeps it on loopback.

1. Start Orthanc (Debian's orthanc + orthanc-dicomweb) and `radscore serve` with
   RADSCORE_DICOMWEB_PUSH_URL pointing at Orthanc's DICOMweb root.
2. Push the CT series (with a recognisable fake patient name) and its SEG to radscore with
   dicomweb-client (STOW-RS), run a job, wait until its delivery is `delivered`.
3. Read the SR back from Orthanc with dicomweb-client (WADO-RS): same instance as radscore's
   result.dcm, same content, patient name copied, probability equal to the JSON result.
4. Stop Orthanc, run a second job: its delivery is retried up to the configured attempts,
   then `failed` with the error; the result and report are still served.
5. radscore's log never holds the fake patient name or ID.
Prints a JSON summary on stdout; exits non-zero with a message on any failure.
"""

import argparse
import glob
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pydicom
from dicomweb_client.api import DICOMwebClient

FAKE_PATIENT_NAME = "Doe^Jane-PHI4242"
FAKE_PATIENT_ID = "PHI4242-ID"
PUSH_MAX_ATTEMPTS = 3
PUSH_RETRY_BASE_MS = 200
# Seconds: a job on the CT phantom in a debug build on a loaded 2-core machine.
JOB_TIMEOUT_S = 300
START_TIMEOUT_S = 60
RESPONSE_PROBABILITY_CODE = "RESPPROB"


def fail(message):
    sys.exit(f"push e2e failed: {message}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `Authorization` for radscore (an API key made with `radscore keys create`); set once
# radscore's database exists. Orthanc gets no credentials.
RADSCORE_AUTH = {}


def http(method, url, body=None, headers=None):
    headers = dict(headers or {})
    if RADSCORE_AUTH.get("base") and url.startswith(RADSCORE_AUTH["base"]):
        headers.update(RADSCORE_AUTH["header"])
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get_json(url):
    status, body = http("GET", url)
    if status != 200:
        fail(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def wait_for(what, predicate, timeout_s):
    started = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() - started > timeout_s:
            fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_orthanc(work, port=None):
    plugin = sorted(glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*")
                    + glob.glob("/usr/lib/orthanc/libOrthancDicomWeb.so*"))
    if not plugin or not shutil.which("Orthanc"):
        fail("Orthanc with its DICOMweb plugin is not installed (scripts/setup.sh installs it)")
    port = port or free_port()
    storage = work / "orthanc-db"
    config = {
        "Name": "radscore-test", "HttpPort": port, "DicomServerEnabled": False,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "StorageDirectory": str(storage), "IndexDirectory": str(storage),
        "Plugins": [plugin[0]], "SaveJobs": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    path = work / "orthanc.json"
    path.write_text(json.dumps(config))
    log = open(work / "orthanc.log", "a")
    proc = subprocess.Popen(["Orthanc", str(path)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return http("GET", f"{base}/system")[0] == 200
        except OSError:
            return proc.poll() is not None and fail(f"Orthanc exited: {(work / 'orthanc.log').read_text()[-2000:]}")
    wait_for("Orthanc to start", up, START_TIMEOUT_S)
    return proc, f"{base}/dicom-web"


def start_radscore(args, work, push_url):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"sqlite://{work / 'radscore.db'}",
        "RADSCORE_BLOB_DIR": str(work / "blobs"),
        "RADSCORE_MODEL_DIR": args.model_dir,
        "RADSCORE_LOG_FORMAT": "json",
        "RUST_LOG": "debug",
        "RADSCORE_WORKERS": "1",
        # The series arrives in one STOW-RS request and its job is asked for at once: no
        # stability delay (a split series would need one).
        "RADSCORE_STOW_STABLE_S": "0",
        "RADSCORE_DICOMWEB_PUSH_URL": push_url,
        "RADSCORE_DICOMWEB_PUSH_MAX_ATTEMPTS": str(PUSH_MAX_ATTEMPTS),
        "RADSCORE_DICOMWEB_PUSH_RETRY_BASE_MS": str(PUSH_RETRY_BASE_MS),
    })
    key = subprocess.run([args.radscore, "keys", "create", "--tenant", "push-test", "--name",
                          "push_e2e"], env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    RADSCORE_AUTH["header"] = {"Authorization": f"Bearer {key}"}
    log_path = work / "radscore.log"
    proc = subprocess.Popen([args.radscore, "serve", "--bind", "127.0.0.1:0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))

    def address():
        if proc.poll() is not None:
            fail(f"radscore exited: {log_path.read_text()[-2000:]}")
        for line in log_path.read_text().splitlines():
            if "radscore listening" in line:
                return json.loads(line)["address"]
        return None
    base = "http://" + wait_for("radscore to start", address, START_TIMEOUT_S)
    RADSCORE_AUTH["base"] = base
    return proc, base, log_path


def push_inputs(args, work, base):
    """The series (with the fake patient) and the SEG, pushed with dicomweb-client."""
    series = []
    for f in sorted(pathlib.Path(args.series_dir).glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PatientName = FAKE_PATIENT_NAME
        ds.PatientID = FAKE_PATIENT_ID
        series.append(ds)
    client = DICOMwebClient(url=base, timeout=600, headers=RADSCORE_AUTH["header"])
    urls = []
    for datasets in (series, [pydicom.dcmread(args.seg)]):
        response = client.store_instances(datasets)
        urls.append(response[0x00081199][0][0x00081190].value)
    series_id = urls[0].rsplit("/", 1)[-1]
    seg_id = urls[1].rsplit("/", 1)[-1]
    return series_id, seg_id, series[0]


def run_job(base, series_id, seg_id, location, final_delivery):
    body = json.dumps({"series_id": series_id, "segmentation_id": seg_id,
                       "lesions": [{"label": 1, "location": location}]}).encode()
    status, answer = http("POST", f"{base}/v1/jobs", body, {"Content-Type": "application/json"})
    if status != 202:
        fail(f"job creation: {status} {answer!r}")
    job_id = json.loads(answer)["id"]

    def finished():
        job = get_json(f"{base}/v1/jobs/{job_id}")
        if job["status"] in ("failed", "cancelled"):
            fail(f"job {job_id} {job['status']}: {job['error']}")
        delivery = job.get("delivery") or {}
        return job if delivery.get("status") == final_delivery else None
    return wait_for(f"job delivery {final_delivery}", finished, JOB_TIMEOUT_S)


def probability_in(sr):
    """The response probability NUM of the first measurement group."""
    stack = list(sr.ContentSequence)
    while stack:
        item = stack.pop()
        name = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
        if item.ValueType == "NUM" and name and name.CodeValue == RESPONSE_PROBABILITY_CODE:
            return float(item.MeasuredValueSequence[0].FloatingPointValue)
        stack.extend(getattr(item, "ContentSequence", []))
    fail("no response probability in the SR")


def check_delivered(base, pacs_url, job, source, work):
    result = get_json(f"{base}/v1/jobs/{job['id']}/result")
    status, report_bytes = http("GET", f"{base}/v1/jobs/{job['id']}/result.dcm")
    if status != 200:
        fail(f"result.dcm: {status}")
    (work / "report.dcm").write_bytes(report_bytes)
    report = pydicom.dcmread(work / "report.dcm")
    pacs = DICOMwebClient(url=pacs_url, timeout=60)
    found = pacs.search_for_instances(study_instance_uid=report.StudyInstanceUID,
                                      search_filters={"Modality": "SR"})
    uids = [i["00080018"]["Value"][0] for i in found]
    if uids != [report.SOPInstanceUID]:
        fail(f"Orthanc holds SR instances {uids}, expected [{report.SOPInstanceUID}]")
    stored = pacs.retrieve_instance(report.StudyInstanceUID, report.SeriesInstanceUID,
                                    report.SOPInstanceUID)
    if stored.ContentSequence != report.ContentSequence:
        fail("the SR in Orthanc differs from radscore's result.dcm")
    if str(stored.PatientName) != FAKE_PATIENT_NAME or stored.PatientID != FAKE_PATIENT_ID:
        fail("the SR in Orthanc does not carry the source's patient")
    if stored.StudyInstanceUID != source.StudyInstanceUID:
        fail("the SR is not in the source study")
    want = result["lesions"][0]["response_probability"]
    got = probability_in(stored)
    if got != want:
        fail(f"probability in Orthanc {got!r} != JSON result {want!r}")
    return {"job": job["id"], "sop_instance_uid": report.SOPInstanceUID,
            "probability": got, "delivery": job["delivery"]}


def check_failed(base, job):
    delivery = job["delivery"]
    if delivery["attempts"] != PUSH_MAX_ATTEMPTS:
        fail(f"failed delivery made {delivery['attempts']} attempts, want {PUSH_MAX_ATTEMPTS}")
    if "could not be reached" not in (delivery["last_error"] or ""):
        fail(f"failed delivery error: {delivery['last_error']}")
    for suffix in ("result", "result.dcm"):
        status, _ = http("GET", f"{base}/v1/jobs/{job['id']}/{suffix}")
        if status != 200:
            fail(f"after a failed delivery /{suffix} answers {status}")
    return {"job": job["id"], "delivery": delivery}


def main():
    ap = argparse.ArgumentParser()
    for name in ("--radscore", "--model-dir", "--series-dir", "--seg", "--work-dir"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    work = pathlib.Path(args.work_dir)
    procs = []
    try:
        orthanc, pacs_url = start_orthanc(work)
        procs.append(orthanc)
        radscore, base, log_path = start_radscore(args, work, pacs_url)
        procs.append(radscore)
        series_id, seg_id, source = push_inputs(args, work, base)

        job = run_job(base, series_id, seg_id, "pleura", "delivered")
        delivered = check_delivered(base, pacs_url, job, source, work)

        orthanc.terminate()
        orthanc.wait(timeout=30)
        job = run_job(base, series_id, seg_id, "soft_tissue", "failed")
        failed = check_failed(base, job)

        log = log_path.read_text()
        for secret in ("PHI4242", "Doe^Jane"):
            if secret in log:
                fail(f"radscore's log contains the patient identifier fragment {secret}")
        print(json.dumps({"delivered": delivered, "failed": failed}))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
