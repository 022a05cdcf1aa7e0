#!/usr/bin/env python3
"""The paged walk (`GET /v1/shows?limit=1000&cursor=…`) of several services side by side.

Usage: bench/paging_walk.py MIN_PAGES LABEL=PORT,METRICS_PORT,PID,TTL_MS,TOKEN [LABEL=…]

Each service's eligible catalogue is walked page by page, following `next` and starting
over at the end, on one keep-alive connection per service. Prints one JSON line per
service: ms per page as the client sees it (mean, median, max) and as the service
measured it (the mean of its `http_request_duration_seconds` over the timed pages), the
pages of one walk, the refills and change-record checks the service counted during the
timed pages, the 503s retried, and its peak RSS.

The issue's target is about the steady state, so before any page is timed each service
is brought to it: one whole walk (with a cache, that makes the cold fill), then, with a
cache (TTL_MS > 0), small requests until the service's own counters
(`catalogue_refills_total`, `catalogue_change_checks_total` on its Prometheus listener)
show a check that found the catalogue unchanged after its last refill. (A cold fill read
while writes may still land is read once more, src/catalogue/; at 100,000 shows on the
emulator each fill takes seconds, and a walk started right after would be timed on a
machine still busy with it.) The checks that land in the timed pages stay in: one small
read at most every 3/4 TTL is the steady state. A refill there would not be; the count
says whether one did.

The timed pages go round robin, one page of each service in turn, until each has
MIN_PAGES: every service sees the same machine at the same time, so a ratio between them
is measured side by side (the machine may be shared and busy).

A 503 (a busy emulator) is retried after its Retry-After, as a client would; counted,
its time left out.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.request

min_pages = int(sys.argv[1])
services = []
for arg in sys.argv[2:]:
    label, rest = arg.split("=", 1)
    port, mport, pid, ttl, token = rest.split(",")
    services.append(dict(label=label, mport=int(mport), pid=int(pid), cached=int(ttl) > 0,
                         token=token, conn=http.client.HTTPConnection("127.0.0.1", int(port), timeout=60),
                         cursor=None, times=[], walks=0, pages=0, retries=0))


def counters(s):
    """(refills, checks that found it unchanged, all checks, seconds and count of the
    service's GET /v1/shows requests): the service's own counts."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{s['mport']}/metrics", timeout=10).read().decode()
    refills = unchanged = checks = req_s = reqs = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        value = float(line.split()[-1]) if line and not line.startswith("#") else 0.0
        if name == "catalogue_refills_total":
            refills += value
        elif name == "catalogue_change_checks_total":
            checks += value
            if 'outcome="unchanged"' in line:
                unchanged += value
        elif name.startswith("http_request_duration_seconds_") and 'route="/v1/shows"' in line \
                and 'method="GET"' in line:
            if name.endswith("_sum"):
                req_s += value
            elif name.endswith("_count"):
                reqs += value
    return refills, unchanged, checks, req_s, reqs


def get(s, cursor, limit=1000):
    """One page: (ms, its items, next cursor)."""
    path = f"/v1/shows?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
    while True:
        t = time.perf_counter()
        s["conn"].request("GET", path, headers={"Authorization": "Bearer " + s["token"]})
        r = s["conn"].getresponse()
        body = r.read()
        ms = (time.perf_counter() - t) * 1e3
        if r.status == 503 and s["retries"] < 20:
            s["retries"] += 1
            time.sleep(float(r.getheader("Retry-After") or 1))
            continue
        if r.status != 200:
            raise SystemExit(f"paging: {s['label']}: HTTP {r.status}: {body[:200]!r}")
        page = json.loads(body)
        return ms, len(page["response"]), page.get("next")


def step(s):
    """The next page of the service's walk (starting over after the last); its ms."""
    ms, items, s["cursor"] = get(s, s["cursor"])
    s["items"] = s.get("items", 0) + items
    if s["cursor"] is None:
        s["walks"] += 1
    return ms


def settle(s):
    while True:  # one whole walk
        s["pages"] += 1
        step(s)
        if s["cursor"] is None:
            break
    s["walks"], s["catalogue"] = 0, s.pop("items")
    if not s["cached"]:
        return
    deadline = time.monotonic() + 120
    refills, unchanged = counters(s)[:2]
    while True:
        time.sleep(0.1)
        get(s, None, limit=1)  # traffic, which is what makes the service check
        r, u = counters(s)[:2]
        if r == refills and u > unchanged:
            return  # a check found it unchanged after the last refill
        if r != refills:
            refills, unchanged = r, u
        if time.monotonic() > deadline:
            raise SystemExit(f"paging: {s['label']}: not settled within 120 s")


for s in services:
    settle(s)
for s in services:
    s["before"] = counters(s)
while min(len(s["times"]) for s in services) < min_pages:
    for s in services:
        s["times"].append(step(s))
for s in services:
    r1, _, c1, req_s, reqs = counters(s)
    r0, _, c0, req_s0, reqs0 = s["before"]
    hwm = next(int(l.split()[1]) for l in open(f"/proc/{s['pid']}/status") if l.startswith("VmHWM:"))
    t = s["times"]
    print(json.dumps(dict(label=s["label"], items=s["catalogue"], pages=s["pages"], timed_pages=len(t),
                          walks=s["walks"], ms_per_page=statistics.mean(t), median_ms=statistics.median(t),
                          max_ms=max(t), refills_during=r1 - r0, checks_during=c1 - c0,
                          service_ms_per_page=(req_s - req_s0) * 1e3 / (reqs - reqs0) if reqs > reqs0 else None,
                          retries_503=s["retries"], hwm_kb=hwm)))
