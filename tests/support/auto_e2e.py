"""End to end auto-trigger round trip with a per-tenant push destination and a real Orthanc.

    unshare -n sh -c 'ip link set lo up && exec python auto_e2e.py --radscore BIN
        --model-dir DIR --series-dir DIR --seg SEG.dcm --work-dir DIR'

Run in a fresh network namespace, like push_e2e.py (whose helpers it uses).

1. Start Orthanc on a fixed port. Set, with the real CLI, the tenant's push destination
   (`radscore tenants set-push`, no RADSCORE_DICOMWEB_PUSH_URL at all) and its auto-trigger
   rule (`radscore tenants set-trigger --default-location pleura`), then `radscore serve`
   with RADSCORE_STOW_STABLE_S.
2. STOW-RS the CT series and its SEG with dicomweb-client; no job exists before the
   stability delay; then a job appears in GET /v1/jobs without any job request, runs, and
   its SR lands in Orthanc, read back with dicomweb-client equal to result.dcm and with the
   JSON result's probability. The audit log has its `job.create` with `via: auto-trigger`.
   Re-sending the same SEG (a PACS retry) answers with the stored segmentation.
3. Stop Orthanc, push a copy of the SEG under a new SOP Instance UID: the new job's
   delivery is retried, then `failed` with the error in the job status; its result and
   report are still served.
4. Restart radscore with many attempts, push another such copy, kill radscore (SIGKILL) while
   the delivery is pending, start Orthanc and radscore again: the interrupted delivery is
   resumed and the SR lands in Orthanc.
Prints a JSON summary on stdout; exits non-zero with a message on any failure.
"""

import argparse
import io
import json
import os
import pathlib
import signal
import subprocess
import time

import pydicom
import pydicom.uid
from dicomweb_client.api import DICOMwebClient

import push_e2e as e2e
from push_e2e import fail, get_json, http, wait_for

TENANT = "auto-test"
STABLE_S = 5
PUSH_MAX_ATTEMPTS = 3
RESUME_MAX_ATTEMPTS = 100
PUSH_RETRY_BASE_MS = 200
PUSH_TIMEOUT_S = 2
# A resumed delivery waits for the dead process's lease: request time limit + margin
# (10 s) + backoff, plus the startup of the new process.
RESUME_TIMEOUT_S = 120


def radscore_env(args, work, max_attempts):
    env = dict(os.environ)
    env.pop("RADSCORE_DICOMWEB_PUSH_URL", None)
    env.update({
        "DATABASE_URL": f"sqlite://{work / 'radscore.db'}",
        "RADSCORE_BLOB_DIR": str(work / "blobs"),
        "RADSCORE_MODEL_DIR": args.model_dir,
        "RADSCORE_LOG_FORMAT": "json",
        "RUST_LOG": "info",
        "RADSCORE_WORKERS": "1",
        "RADSCORE_STOW_STABLE_S": str(STABLE_S),
        "RADSCORE_DICOMWEB_PUSH_MAX_ATTEMPTS": str(max_attempts),
        "RADSCORE_DICOMWEB_PUSH_RETRY_BASE_MS": str(PUSH_RETRY_BASE_MS),
        "RADSCORE_DICOMWEB_PUSH_TIMEOUT_S": str(PUSH_TIMEOUT_S),
    })
    return env


def cli(args, env, *words):
    out = subprocess.run([args.radscore, *words], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"radscore {' '.join(words)}: {out.stderr[-2000:]}")
    return out.stdout


def configure_tenant(args, work, pacs_url):
    env = radscore_env(args, work, PUSH_MAX_ATTEMPTS)
    key = cli(args, env, "keys", "create", "--tenant", TENANT, "--admin").strip()
    e2e.RADSCORE_AUTH["header"] = {"Authorization": f"Bearer {key}"}
    cli(args, env, "tenants", "set-push", "--tenant", TENANT, "--url", pacs_url)
    shown = json.loads(cli(args, env, "tenants", "set-trigger", "--tenant", TENANT,
                           "--default-location", "pleura"))
    if shown["push"]["url"] != pacs_url or shown["auto_trigger"]["default_location"] != "pleura":
        fail(f"tenants show: {shown}")


def start_radscore(args, work, max_attempts, n):
    env = radscore_env(args, work, max_attempts)
    log_path = work / f"radscore-{n}.log"
    proc = subprocess.Popen([args.radscore, "serve", "--bind", "127.0.0.1:0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))

    def address():
        if proc.poll() is not None:
            fail(f"radscore exited: {log_path.read_text()[-2000:]}")
        for line in log_path.read_text().splitlines():
            if "radscore listening" in line:
                return json.loads(line)["address"]
        return None
    base = "http://" + wait_for("radscore to start", address, e2e.START_TIMEOUT_S)
    e2e.RADSCORE_AUTH["base"] = base
    return proc, base


def stow(base, datasets):
    client = DICOMwebClient(url=base, timeout=600, headers=e2e.RADSCORE_AUTH["header"])
    response = client.store_instances(datasets)
    return response[0x00081199][0][0x00081190].value.rsplit("/", 1)[-1]


def new_instance(dataset):
    """A copy of `dataset` under a fresh SOP Instance UID: a new segmentation of the same
    lesions. radscore answers a re-sent identical instance (a PACS retry) with the stored
    one and triggers no second job, so every step that wants a new job sends a new one."""
    copy = pydicom.dcmread(io.BytesIO(dataset_bytes(dataset)))
    copy.SOPInstanceUID = pydicom.uid.generate_uid()
    copy.file_meta.MediaStorageSOPInstanceUID = copy.SOPInstanceUID
    return copy


def dataset_bytes(dataset):
    out = io.BytesIO()
    dataset.save_as(out)
    return out.getvalue()


def auto_job(base, seg_id):
    """The job the trigger starts for `seg_id`, found in GET /v1/jobs."""
    def listed():
        jobs = get_json(f"{base}/v1/jobs")["jobs"]
        found = [j for j in jobs if j["segmentation_id"] == seg_id]
        return found[0] if found else None
    job = wait_for("the auto-triggered job", listed, e2e.JOB_TIMEOUT_S)
    if [l["location"] for l in job["lesions"]] != ["pleura"]:
        fail(f"auto-triggered lesions {job['lesions']}, want one at the rule's pleura")
    return job


def until_delivery(base, job_id, predicate, timeout_s=e2e.JOB_TIMEOUT_S):
    def check():
        job = get_json(f"{base}/v1/jobs/{job_id}")
        if job["status"] in ("failed", "cancelled"):
            fail(f"job {job_id} {job['status']}: {job['error']}")
        return job if predicate(job.get("delivery") or {}) else None
    return wait_for(f"delivery of {job_id}", check, timeout_s)


def check_in_pacs(base, pacs_url, job_id, work):
    result = get_json(f"{base}/v1/jobs/{job_id}/result")
    status, report_bytes = http("GET", f"{base}/v1/jobs/{job_id}/result.dcm")
    if status != 200:
        fail(f"result.dcm: {status}")
    path = work / f"report-{job_id}.dcm"
    path.write_bytes(report_bytes)
    report = pydicom.dcmread(path)
    pacs = DICOMwebClient(url=pacs_url, timeout=60)
    stored = pacs.retrieve_instance(report.StudyInstanceUID, report.SeriesInstanceUID,
                                    report.SOPInstanceUID)
    if stored.ContentSequence != report.ContentSequence:
        fail("the SR in Orthanc differs from radscore's result.dcm")
    want = result["lesions"][0]["response_probability"]
    got = e2e.probability_in(stored)
    if got != want:
        fail(f"probability in Orthanc {got!r} != JSON result {want!r}")
    return {"job": job_id, "sop_instance_uid": report.SOPInstanceUID, "probability": got}


def check_audit(base, job_id):
    events = get_json(f"{base}/v1/audit")["events"]
    created = [e for e in events if e["action"] == "job.create" and e["object_id"] == job_id]
    if len(created) != 1 or created[0]["detail"].get("via") != "auto-trigger":
        fail(f"audit events for {job_id}: {created}")
    return created[0]


def stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    for name in ("--radscore", "--model-dir", "--series-dir", "--seg", "--work-dir"):
        ap.add_argument(name, required=True)
    args = ap.parse_args()
    work = pathlib.Path(args.work_dir)
    procs = []
    try:
        port = e2e.free_port()
        orthanc, pacs_url = e2e.start_orthanc(work, port)
        procs.append(orthanc)
        configure_tenant(args, work, pacs_url)
        radscore, base = start_radscore(args, work, PUSH_MAX_ATTEMPTS, 1)
        procs.append(radscore)
        series = [pydicom.dcmread(f) for f in sorted(pathlib.Path(args.series_dir).glob("*.dcm"))]
        seg = pydicom.dcmread(args.seg)

        # 2. STOW-RS in, job without a request, SR out.
        stow(base, series)
        seg_id = stow(base, [seg])
        early = [j for j in get_json(f"{base}/v1/jobs")["jobs"] if j["segmentation_id"] == seg_id]
        if early:
            fail(f"a job started before the series was stable for {STABLE_S} s: {early}")
        job = auto_job(base, seg_id)
        done = until_delivery(base, job["id"], lambda d: d.get("status") == "delivered")
        delivered = check_in_pacs(base, pacs_url, job["id"], work)
        delivered["delivery"] = done["delivery"]
        delivered["audit"] = check_audit(base, job["id"])
        if stow(base, [seg]) != seg_id:
            fail("a re-sent identical SEG was stored as a new segmentation")

        # 3. Destination down: retried, then reported; the result stays.
        stop(orthanc)
        job = auto_job(base, stow(base, [new_instance(seg)]))
        done = until_delivery(base, job["id"], lambda d: d.get("status") == "failed")
        for suffix in ("result", "result.dcm"):
            if http("GET", f"{base}/v1/jobs/{job['id']}/{suffix}")[0] != 200:
                fail(f"after a failed delivery /{suffix} is not served")
        failed = {"job": job["id"], "delivery": done["delivery"]}

        # 4. A delivery cut off by a process exit is resumed by the next process.
        stop(radscore)
        radscore, base = start_radscore(args, work, RESUME_MAX_ATTEMPTS, 2)
        procs.append(radscore)
        job = auto_job(base, stow(base, [new_instance(seg)]))
        until_delivery(base, job["id"], lambda d: d.get("attempts", 0) >= 2)
        stop(radscore, signal.SIGKILL)
        orthanc, _ = e2e.start_orthanc(work, port)
        procs.append(orthanc)
        radscore, base = start_radscore(args, work, RESUME_MAX_ATTEMPTS, 3)
        procs.append(radscore)
        done = until_delivery(base, job["id"], lambda d: d.get("status") == "delivered",
                              RESUME_TIMEOUT_S)
        resumed = check_in_pacs(base, pacs_url, job["id"], work)
        resumed["delivery"] = done["delivery"]
        still_failed = get_json(f"{base}/v1/jobs/{failed['job']}")["delivery"]
        print(json.dumps({"delivered": delivered, "failed": failed, "resumed": resumed,
                          "failed_after_restart": still_failed}))
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
