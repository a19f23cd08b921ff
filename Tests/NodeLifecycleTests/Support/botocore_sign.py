#!/usr/bin/env python3
"""Signs requests with botocore's SigV4Auth under a frozen clock.

Usage: botocore_sign.py REQUESTS.json
REQUESTS.json: {"time": "20260102T030405Z", "region": R, "service": S,
  "access_key": K, "secret_key": K, "token": T|null,
  "requests": [{"method": M, "url": U, "headers": [[N, V], ...], "body": STR}]}
Prints a JSON array of {"authorization": A, "x-amz-date": D, "signed": [[N, V], ...]}.
"""
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    frozen = datetime.datetime.strptime(spec["time"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: frozen
    creds = Credentials(spec["access_key"], spec["secret_key"], spec.get("token"))
    signer = botocore.auth.SigV4Auth(creds, spec["service"], spec["region"])
    out = []
    for r in spec["requests"]:
        req = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode("utf-8"))
        for name, value in r["headers"]:
            req.headers[name] = value
        signer.add_auth(req)
        out.append({
            "authorization": req.headers["Authorization"],
            "x-amz-date": req.headers["X-Amz-Date"],
            "signed": [[k, v] for k, v in req.headers.items()],
        })
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
