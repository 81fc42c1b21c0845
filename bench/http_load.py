"""One load-generating process of the HTTP row: ``python -m bench.http_load`` < job.json > result.json.

Standard library only, so that it starts fast and costs little: threads, each with one kept-alive
``http.client`` connection, send requests back to back from ``start_at`` (a wall-clock time shared by
every process) until ``end_at``; the answers that arrived within ``[measure_from, end_at)`` are counted.

The job: ``{"host", "port", "method", "start_at", "measure_from", "end_at",
"threads": [[{"path", "token", "body"}, ...], ...]}``: each thread cycles through its own requests.
The result: ``{"statuses": {status: n}, "latencies_ms": [...] (2xx only), "errors": n,
"created": {token: order id} (the last 201 answer of each token), "busy": n}``.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter


def _client(job: dict, requests: list[dict], result: dict, lock: threading.Lock) -> None:
    statuses: Counter = Counter()
    latencies: list[float] = []
    created: dict[str, int] = {}
    errors = busy = 0
    connection = http.client.HTTPConnection(job["host"], job["port"], timeout=60)
    index = 0
    while time.time() < job["start_at"]:
        time.sleep(min(0.01, max(0.0, job["start_at"] - time.time())))
    while True:
        now = time.time()
        if now >= job["end_at"]:
            break
        request = requests[index % len(requests)]
        index += 1
        headers = {"Authorization": f"Token {request['token']}", "Accept": "application/json"}
        body = None
        if request.get("body") is not None:
            body = json.dumps(request["body"]).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            connection.request(job["method"], request["path"], body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            connection.close()  # reconnects on the next request
            time.sleep(0.01)
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000
        done = time.time()  # counted by when it was answered: a steady rate over the window
        measured = job["measure_from"] <= done < job["end_at"]
        if measured:
            statuses[response.status] += 1
            if 200 <= response.status < 300:
                latencies.append(elapsed_ms)
        if response.status == 201:
            created[request["token"]] = json.loads(payload)["id"]
        elif response.status == 503:
            busy += measured
            time.sleep(0.01)  # the pool's queue is full: a client backs off a little
        if response.getheader("Connection", "").lower() == "close":
            connection.close()
    connection.close()
    with lock:
        result["statuses"].update(statuses)
        result["latencies_ms"].extend(latencies)
        result["created"].update(created)
        result["errors"] += errors
        result["busy"] += busy


def run(job: dict) -> dict:
    result = {"statuses": Counter(), "latencies_ms": [], "created": {}, "errors": 0, "busy": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_client, args=(job, requests, result, lock), daemon=True)
        for requests in job["threads"]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["statuses"] = {str(status): count for status, count in result["statuses"].items()}
    return result


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
