#!/usr/bin/env python3
"""A write through any task, listed by every task: how long until it is (issue 12's target:
within 2 s).

Usage: bench/visible.py WRITES TOKEN PORT[,METRICS_PORT] [PORT[,METRICS_PORT]…]

The services at PORT… share one table (and one issuer key, so TOKEN is valid on all).
Every service is polled all along, as a task behind the load balancer has traffic: one
thread each, `GET /v1/shows` every POLL_MS (15) with `If-None-Match` (a 304 until its
catalogue changes, so polling a large catalogue stays cheap), keep-alive. WRITES times,
after a random pause (0 to 1 s, seeded: the writes land at every point of the services'
check cycles), a feed of one new show is posted through the services in turn (write i
through service i mod n), and for each service the time from the POST's 2xx to the end
of the first GET on that service whose catalogue lists the show is taken (0 when a GET
that ended before the 2xx already did). Each write waits for every service, at most
DEADLINE_S (10) per write; a service that never lists it within that is reported, not
waited for.

With a METRICS_PORT (a service's Prometheus listener), the writes start only once every
service is in the steady state: its last refill is done and a check since found the
catalogue unchanged (a cold fill read while writes may still land is read once more, and at 100,000
shows on the emulator that takes seconds); and the refills each service made during the
writes are reported by kind: `delta` (only the changed shows read) or `full` (the index),
with the read units a delta refill cost (`BatchGetItem`'s units over the delta count).

Prints one JSON line: per service and overall, p50 and max in ms, and every delay (with
the index of the service each write went through: that one lists it at its next GET, as
its own write invalidates its snapshot; the others find it at their next check).
"""
import http.client
import json
import random
import statistics
import sys
import threading
import time
import urllib.request

POLL_MS = 15
DEADLINE_S = 10.0

writes, token = int(sys.argv[1]), sys.argv[2]
specs = [a.split(",") for a in sys.argv[3:]]
ports = [int(s[0]) for s in specs]
mports = {int(s[0]): int(s[1]) for s in specs if len(s) > 1}
auth = {"Authorization": "Bearer " + token}
lock = threading.Lock()
target = None  # the slug looked for, as it appears in the JSON (b'"slug":"show/…"')
seen = {}  # port -> when (perf_counter) a GET that lists the target ended
stop = threading.Event()
polls = {p: 0 for p in ports}


def poll(port, filled):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    etag, listed = None, b""
    while not stop.is_set():
        headers = dict(auth, **({"If-None-Match": etag} if etag else {}))
        try:
            conn.request("GET", "/v1/shows", headers=headers)
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):  # a dropped connection: a new one
            conn.close()
            time.sleep(POLL_MS / 1000)
            continue
        ended = time.perf_counter()
        polls[port] += 1
        if r.status == 200:
            etag, listed = r.getheader("ETag"), body
            filled.set()
        # 304: unchanged; anything else (a 503 from a busy emulator): as before, poll again
        with lock:
            if target and port not in seen and target in listed:
                seen[port] = ended
        time.sleep(POLL_MS / 1000)


filled = [threading.Event() for _ in ports]
threads = [threading.Thread(target=poll, args=(p, f), daemon=True) for p, f in zip(ports, filled)]
for t in threads:
    t.start()
for f in filled:
    if not f.wait(60):
        raise SystemExit("visible: a service never answered 200")


def counters(port):
    """{(name, kind or outcome label): value} of the refill and check counters."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{mports[port]}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "store_consumed_read_units_total" and 'operation="BatchGetItem"' in line:
            out[(name, "BatchGetItem")] = float(line.split()[-1])
        if name in ("catalogue_refills_total", "catalogue_change_checks_total"):
            label = next((l.split('"')[1] for l in line.split(",") if "kind=" in l or "outcome=" in l), "")
            out[(name, label)] = out.get((name, label), 0.0) + float(line.split()[-1])
    return out


def refills(c, kind=None):
    return sum(v for (n, k), v in c.items() if n == "catalogue_refills_total" and kind in (None, k))


deadline = time.monotonic() + 300
for p in mports:
    last = counters(p)
    while True:
        time.sleep(0.5)
        now = counters(p)
        if refills(now) == refills(last) and \
                now.get(("catalogue_change_checks_total", "unchanged"), 0) > \
                last.get(("catalogue_change_checks_total", "unchanged"), 0):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"visible: service {p} never reached a steady state")
        last = now
time.sleep(1.5)  # every service polled for two check cycles before the first write
before = {p: counters(p) for p in mports}
rng = random.Random(12)
run = f"{time.time_ns():x}"
delays = {p: [] for p in ports}
missed = {p: 0 for p in ports}
writers = []
for i in range(writes):
    time.sleep(rng.uniform(0, 1))
    slug = f"show/visible-{run}-{i}"
    feed = {"payload": [{"slug": slug, "title": f"Visible {i}", "drm": True, "episodeCount": 1}]}
    with lock:
        target, seen = f'"slug":"{slug}"'.encode(), {}
    writer = ports[i % len(ports)]
    writers.append(i % len(ports))
    conn = http.client.HTTPConnection("127.0.0.1", writer, timeout=30)
    conn.request("POST", "/v1/shows", body=json.dumps(feed),
                 headers=dict(auth, **{"Content-Type": "application/json"}))
    r = conn.getresponse()
    r.read()
    written = time.perf_counter()
    if r.status // 100 != 2:
        raise SystemExit(f"visible: POST through {writer}: HTTP {r.status}")
    while time.perf_counter() - written < DEADLINE_S:
        with lock:
            if len(seen) == len(ports):
                break
        time.sleep(0.005)
    with lock:
        for p in ports:
            if p in seen:
                delays[p].append(max(0.0, seen[p] - written) * 1000)
            else:
                delays[p].append(None)
                missed[p] += 1
        target = None
stop.set()
for t in threads:
    t.join(timeout=35)
after = {p: counters(p) for p in mports}
made = {p: {k: refills(after[p], k) - refills(before[p], k) for k in ("delta", "full")} for p in mports}
key = ("store_consumed_read_units_total", "BatchGetItem")
for p in mports:  # read units of the change-log reads (entries and shows), per delta refill
    made[p]["delta_read_units"] = (after[p].get(key, 0) - before[p].get(key, 0)) / max(1, made[p]["delta"])


def q(ds, f):
    ds = [d for d in ds if d is not None]
    return f(ds) if ds else None


every = [d for p in ports for d in delays[p]]
others = [d for k, p in enumerate(ports) for i, d in enumerate(delays[p]) if writers[i] != k]
print(json.dumps(dict(
    writes=writes, poll_ms=POLL_MS, deadline_s=DEADLINE_S, writers=writers,
    services=[dict(p50_ms=q(delays[p], statistics.median), max_ms=q(delays[p], max),
                   missed=missed[p], polls=polls[p], refills=made.get(p),
                   delays_ms=[None if d is None else round(d, 1) for d in delays[p]])
              for p in ports],
    p50_ms=q(every, statistics.median), max_ms=q(every, max),
    others_p50_ms=q(others, statistics.median), others_max_ms=q(others, max),
    missed=sum(missed.values()))))
