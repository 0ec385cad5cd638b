"""Push DICOM files to a STOW-RS endpoint with the dicomweb-client package.

    stow_push.py --url http://127.0.0.1:PORT [--api-key KEY] [--study UID] FILE_OR_DIR ...

Every *.dcm file under the given paths (or the files themselves) is read with pydicom and
sent in one request by DICOMwebClient.store_instances (multipart/related;
type="application/dicom"), with the API key as `Authorization: Bearer`. Prints the
response data set as DICOM JSON on stdout.
"""

import argparse
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
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()

    files = []
    for p in map(pathlib.Path, args.paths):
        files.extend(sorted(p.glob("*.dcm")) if p.is_dir() else [p])
    datasets = [pydicom.dcmread(f) for f in files]
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else None
    client = DICOMwebClient(url=args.url, headers=headers, timeout=TIMEOUT_S)
    response = client.store_instances(datasets=datasets, study_instance_uid=args.study)
    print(response.to_json())


if __name__ == "__main__":
    main()
