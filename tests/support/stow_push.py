"""Push DICOM files to a STOW-RS endpoint with the dicomweb-client package.

    stow_push.py --url http://127.0.0.1:PORT [--api-key KEY] [--study UID]
                 [--per-request N] FILE_OR_DIR ...

Every *.dcm file under the given paths (or the files themselves, in the order given) is
read with pydicom and sent in one request by DICOMwebClient.store_instances
(multipart/related; type="application/dicom"), with the API key as `Authorization:
Bearer`. Prints the response data set as DICOM JSON on stdout. With --per-request N the
files are sent N per request, in order, as a PACS router splitting a series does, and a
JSON array of the responses is printed instead.
"""

import argparse
import json
import pathlib

import pydicom
from dicomweb_client.api import DICOMwebClient

# Seconds to wait for the answer: the server assembles the whole series before answering,
# which takes a while on a loaded test machine (the client's default is 20 s).
TIMEOUT_S = 600


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--study", default=None)
    ap.add_argument("--per-request", type=int, default=None)
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()

    files = []
    for p in map(pathlib.Path, args.paths):
        files.extend(sorted(p.glob("*.dcm")) if p.is_dir() else [p])
    datasets = [pydicom.dcmread(f) for f in files]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    client = DICOMwebClient(url=args.url, headers=headers, timeout=TIMEOUT_S)
    if args.per_request is None:
        response = client.store_instances(datasets=datasets, study_instance_uid=args.study)
        print(response.to_json())
        return
    responses = []
    for start in range(0, len(datasets), args.per_request):
        chunk = datasets[start:start + args.per_request]
        response = client.store_instances(datasets=chunk, study_instance_uid=args.study)
        responses.append(response.to_json_dict())
    print(json.dumps(responses))


if __name__ == "__main__":
    main()
