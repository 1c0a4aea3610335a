"""The soak's /predict client (benchmarks/reliability.py runs it as a process of its own).

Reads one JSON object on stdin: ``url``, ``auth`` (the Authorization header; on stdin, so it
never shows in a process listing), ``body_path`` (the request body), ``n_tasks`` and
``seconds``. Posts /predict one request after another (20 ms apart) for ``seconds`` and
writes ``{"latencies_ms": [...], "bad": n}`` to stdout: ``bad`` counts requests that failed
or answered another number of results than tasks.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def main() -> int:
    job = json.loads(sys.stdin.read())
    body = Path(job["body_path"]).read_bytes()
    headers = {"Content-Type": "application/json", "Authorization": job["auth"]}
    latencies: list[float] = []
    bad = 0
    deadline = time.monotonic() + float(job["seconds"])
    while time.monotonic() < deadline:
        request = urllib.request.Request(job["url"] + "/predict", data=body, headers=headers, method="POST")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload, status = response.read(), response.status
        except urllib.error.HTTPError as error:
            payload, status = error.read(), error.code
        except OSError:  # refused, reset, timed out: a failed request, counted
            payload, status = b"", 0
        latencies.append((time.perf_counter() - t0) * 1000)
        try:
            n_results = len(json.loads(payload).get("results", []))
        except ValueError:
            n_results = -1
        bad += status != 200 or n_results != int(job["n_tasks"])
        time.sleep(0.02)
    json.dump({"latencies_ms": latencies, "bad": bad}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
