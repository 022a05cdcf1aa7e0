#!/usr/bin/env python3
"""Paged GETs through full refills: the latency a client sees while the service re-reads
the whole index (issue 24).

Usage: bench/through_refills.py SECONDS RATE PORT METRICS_PORT TOKEN

Open loop, as clients behind a load balancer arrive: RATE requests a second for SECONDS,
spread over WORKERS (32) keep-alive connections, each request's send time fixed in
advance (worker i sends at start + (k * WORKERS + i) / RATE). A request's latency runs
from its scheduled time to the end of its body, so a request that could not be sent on
time because the one before it on its connection was stuck behind a refill counts that
wait too (no coordinated omission). Each worker walks `GET /v1/shows?limit=100`,
following `next`, starting over at the end. Prints one JSON line: requests, p50/p90/p99/
max in ms, the non-200s, how many of them the service itself took over 5, 10, 25 and
50 ms to answer (its `http_request_duration_seconds` buckets), and the refills it counted
during the window by kind and reason (`catalogue_refills_total`), both from its
Prometheus listener; and the CPU seconds this client used (`client_cpu_s`), to tell its
own cost apart.
"""
import http.client
import json
import os
import sys
import threading
import time
import urllib.request

WORKERS = 32

seconds, rate = float(sys.argv[1]), float(sys.argv[2])
port, mport, token = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
auth = {"Authorization": "Bearer " + token}


def scrape():
    """The refills by labels, and the service's own request durations: count per bucket."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    out, buckets = {}, {}
    for line in text.splitlines():
        if line.startswith("catalogue_refills_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels[len("catalogue_refills_total"):]] = float(value)
        elif line.startswith("http_request_duration_seconds_bucket{"):
            labels, value = line.rsplit(" ", 1)
            le = labels.split('le="')[1].split('"')[0]
            buckets[le] = buckets.get(le, 0) + float(value)
    return out, buckets


took, statuses, lock = [], {}, threading.Lock()


def worker(i, start):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    cursor, k = None, 0
    while True:
        due = start + (k * WORKERS + i) / rate
        if due >= start + seconds:
            return
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        path = "/v1/shows?limit=100" + (f"&cursor={cursor}" if cursor else "")
        conn.request("GET", path, headers=auth)
        res = conn.getresponse()
        body = res.read()
        done = time.perf_counter()
        cursor = json.loads(body).get("next") if res.status == 200 else None
        with lock:
            took.append((done - due) * 1000)
            statuses[res.status] = statuses.get(res.status, 0) + 1
        k += 1


before, b0 = scrape()
start = time.perf_counter() + 0.1
threads = [threading.Thread(target=worker, args=(i, start)) for i in range(WORKERS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
after, b1 = scrape()
served = b1.get("+Inf", 0) - b0.get("+Inf", 0)
# As the service measured them (from its middleware to the response ready): how many
# took longer than 5, 10, 25, 50 ms; the rest of the client's time is loopback, the
# client and the machine.
server_over_ms = {ms: served - (b1.get(le, 0) - b0.get(le, 0))
                  for ms, le in ((5, "0.005"), (10, "0.01"), (25, "0.025"), (50, "0.05"))}
took.sort()
q = lambda p: round(took[min(len(took) - 1, int(p * len(took)))], 3)
print(json.dumps(dict(
    seconds=seconds, rate=rate, requests=len(took), p50_ms=q(0.5), p90_ms=q(0.9),
    p99_ms=q(0.99), max_ms=round(took[-1], 3), statuses=statuses,
    server_requests=served, server_over_ms=server_over_ms,
    refills={k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)},
    client_cpu_s=round(sum(os.times()[:2]), 2))))
