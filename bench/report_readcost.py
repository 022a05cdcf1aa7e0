#!/usr/bin/env python3
"""Renders the read-cost section of docs/benchmarks.md (the rows of bench/readcost.sh).

bench/report.py includes it in the full report; `bench/run.sh --only readcost` calls
    bench/report_readcost.py RESULTS.jsonl --splice docs/benchmarks.md
which replaces the section between its markers (appends it when the file has none), so the
other rows' figures stay those of their own run. A run of some row sets only
(`--only paging`, `--only visible`) replaces just their blocks inside the section (each
between `<!-- readcost:KEY -->` markers; a block the file lacks goes in before the data
line), each with a line saying which run it is from.
"""
import json
import sys

BEGIN = "<!-- readcost: bench/run.sh --only readcost replaces this section -->"
END = "<!-- /readcost -->"
# The blocks of the section, in order, by the row kind each renders.
BLOCKS = {"units": "readcost", "refill": "refill", "paging": "paging", "visible": "visible"}


def block_begin(key):
    return f"<!-- readcost:{key} -->"


def block_end(key):
    return f"<!-- /readcost:{key} -->"
# The figures issue 12 measured before the change record (one task, steady GET load, no
# writes, dynalite's capacity accounting): read units a minute.
BEFORE = {1000: 3100, 10000: 19900}


def render(rows):
    """The whole section, each row set's block between its markers."""
    every = lambda kind: [r for r in rows if r.get("kind") == kind]
    machine = next((r for r in rows if r.get("kind") == "machine"), {})
    end = next((r for r in rows if r.get("kind") == "end"), {})
    out = [BEGIN, "", "## Read cost (issue 12): change record, refills, paging, 100,000 shows", ""]
    w = out.append
    w(f"Measured {measured(machine, end)}. Shows with "
      "400-byte descriptions, half eligible (`tools/gen-feed.py N --description-bytes 400`). "
      "Units are dynalite's capacity accounting (`ReturnConsumedCapacity`, what DynamoDB "
      "bills), read from the service's `store_consumed_read_units_total` counter on its "
      "Prometheus listener and its `catalogue refilled` log lines.")
    w("")
    for key, lines in blocks(rows).items():
        out.extend([block_begin(key), "", *lines, block_end(key), ""])
    imp = every("rc_import")
    if imp:
        w("Loading the data (`show-service import`, chunks of 1,000): " + "; ".join(
            f"{r['shows']:,} shows: SQLite {r['sqlite_s']:.1f} s, dynalite {r['dynamo_s']:.1f} s" for r in imp) + ".")
        w("")
    w("Reproduce: `bench/run.sh --only readcost` (all of it), `bench/run.sh --only paging` or "
      "`bench/run.sh --only visible` (one block; settings: BENCH_READCOST_SECONDS, "
      "BENCH_READCOST_SIZES, BENCH_MID, BENCH_BIG, BENCH_REFILLS, BENCH_PAGES, "
      "BENCH_VISIBLE_WRITES, BENCH_BIN; see bench/readcost.sh).")
    w("")
    w(END)
    return out


def measured(machine, end):
    load = lambda r: ", ".join(f"{x:.1f}" for x in r) if r else "?"
    return (f"{machine.get('date', '?')} at commit `{machine.get('commit', '?')}`"
            f"{' (dirty)' if machine.get('dirty') else ''} on {machine.get('nproc', '?')} cores "
            f"shared with other engineers' builds and tests (load {load(machine.get('load_start'))} "
            f"at start, {load(end.get('load_end'))} at the end), so the times are noisy; the units "
            "are not, and ratios are of figures measured side by side")


def blocks(rows):
    """{key: lines} for each row set these rows hold, in section order."""
    every = lambda kind: [r for r in rows if r.get("kind") == kind]
    out = {}
    rc = every("readcost")
    if rc:
        out["units"] = b = []
        w = b.append
        w("### Read units per minute per task, no writes (target ≤ 60)")
        w("")
        w("The run starts one GET after the cold fill, so it includes that fill's settle refill "
          "(see src/catalogue/); \"between refills\" takes the refills' units out: what a "
          "task pays while nothing changes, between safety-net refreshes.")
        w("")
        w("| shows | GET load | read units in the run | per minute | refills in the run | per minute between refills | before (issue 12) | before ÷ now (between refills) | store calls | one full refill |")
        w("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rc:
            before = BEFORE.get(r["shows"])
            between = (r["read_units"] - r["refills"] * (r["fill_read_units"] or 0)) * 60 / r["seconds"]
            per = between
            ratio = f"{before / per:,.0f}×" if before and per else ("∞ (0 units)" if before else "–")
            w(f"| {r['shows']:,} | {r['rps']:,.0f} req/s for {r['seconds']:.0f} s (wrk, 4 connections) | "
              f"{r['read_units']:,.1f} | {r['units_per_min']:,.1f} | {r['refills']:,.0f} | **{between:,.1f}** | "
              f"{f'{before:,}' if before else '–'} | {ratio} | {r['calls']:,.0f} | "
              f"{r['fill_read_units'] or 0:,.1f} units, {r['fill_calls'] or 0:,} calls |")
        w("")
        w("Between refills a task pays one eventually consistent `GetItem` of the change record "
          "(0.5 units) at most every 3/4 of the cache TTL (1 s) while it has traffic: 40 units a minute. The safety-net "
          "refresh (default every 300 s) adds one full refill per interval, see the cost model in "
          "docs/dynamodb.md.")
        w("")
    rf = every("refill")
    if rf:
        out["refill"] = b = []
        w = b.append
        w("### First fill and the refill after a write (dynalite)")
        w("")
        w("| shows | first GET (cold fill), wall | cold fill (log) | its read units | refill after a write (median) | items/s | read units per refill | calls | runs (ms) | RSS after / peak |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in rf:
            ips = r["items"] / (r["refill_ms"] / 1000) if r.get("refill_ms") and r.get("items") else None
            w(f"| {r['shows']:,} | {r['first_get_s']:.2f} s (HTTP {r['first_status']}) | "
              f"{(r['cold_ms'] or 0) / 1000:.2f} s | {r['cold_read_units'] or 0:,.1f} | "
              f"{(r['refill_ms'] or 0) / 1000:.2f} s | {ips or 0:,.0f} | {r['read_units'] or 0:,.1f} | "
              f"{r['calls'] or 0:,.0f} | {', '.join(f'{x:.0f}' for x in r['refill_runs'])} | "
              f"{r['rss_kb'] / 1024:.1f} / {r['hwm_kb'] / 1024:.1f} MiB |")
        w("")
        w("Compare the first GET with the request timeout (`APP__SERVER__REQUESTTIMEOUTMS`, "
          "10 s by default). Each write is a `POST` of one show followed by a `GET` (reason "
          "`local_write`). The refill columns are the reads of the whole index among them (items: "
          "the eligible shows it reads, half the catalogue): what a refill costs when the change "
          "log cannot tell, and what the cold fill and the safety net cost. A write the log can "
          "tell is applied from it instead (re-read shows spliced in): "
          + ", ".join(f"median {r['delta_ms']:.0f} ms over {len(r['delta_runs'])} at {r['shows']:,} shows"
                      if r.get("delta_runs") else f"none at {r['shows']:,} shows" for r in rf)
          + ". Write units per one-show `POST` (the put, the change record's bump and the "
          "change-log entry): "
          + ", ".join(f"{r['write_units_per_post']:.1f} at {r['shows']:,} shows" for r in rf) + ".")
        w("")
    pg = every("paging")
    if pg:
        out["paging"] = b = []
        w = b.append
        small = min(r["shows"] for r in pg)
        big = max(r["shows"] for r in pg)
        w(f"### Paged walk `?limit=1000&cursor=…` (target: {big:,} within 1.5× of {small:,})")
        w("")
        w(f"For each store and cache setting, a service on {small:,} shows and one on {big:,} run "
          "at the same time and are walked in turns, one page of each, on one keep-alive "
          "connection each (bench/paging_walk.py), so the ratio is of figures measured side by "
          "side on the same machine load. Before any page is timed each service is brought to "
          "its steady state: a whole walk (the cold fill), then small requests until the "
          "service's own counters show a change-record check that found the catalogue unchanged "
          "after its last refill (the cold fill's settle refill done). Then every walk restarts "
          "at the first page when it ends, until each service has its timed pages; ms per page "
          "as the client sees it; the ratio is of the medians. With a cache TTL > 0 pages are "
          "cut from the cached snapshot, and the change-record checks that land among the timed "
          "pages stay in (one small read at most every 3/4 TTL: the steady state); a refill "
          "there would not be, and the refills column says whether one did. "
          "`APP__CACHE__TTLMS=0` makes every page a store query. A 503 (the emulator too busy) "
          "is retried after its Retry-After, as a client would; the retries are counted, their "
          "time is not: " + (", ".join(f"{r['retries_503']} ({r['store']}, {r['shows']:,}, TTL {r['ttl_ms']})"
                                        for r in pg if r.get("retries_503")) or "none") + ".")
        w("")
        w("| store | pages from | shows | pages per walk | timed pages | ms per page (mean) | median | max | ÷ the smaller catalogue | the service's own ms per page (mean) | refills / checks while timed | peak RSS |")
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = {(r["store"], r["ttl_ms"]): r["median_ms"] for r in pg if r["shows"] == small}
        ratios = {}
        for r in pg:
            bm = base.get((r["store"], r["ttl_ms"]))
            rel = "–"
            if bm and r["shows"] != small:
                ratios[(r["store"], r["ttl_ms"])] = r["median_ms"] / bm
                rel = f"**{r['median_ms'] / bm:.2f}×**"
            src = f"cache (TTL {r['ttl_ms']} ms)" if r["ttl_ms"] else "store (TTL 0)"
            own = r.get("service_ms_per_page")
            w(f"| {r['store']} | {src} | {r['shows']:,} | {r['pages']} | {r['timed_pages']} | "
              f"{r['ms_per_page']:.2f} | {r['median_ms']:.2f} | {r['max_ms']:.1f} | {rel} | "
              f"{'–' if own is None else f'{own:.3f}'} | "
              f"{r['refills_during']:.0f} / {r['checks_during']:.0f} | {r['hwm_kb'] / 1024:.1f} MiB |")
        w("")
        if ratios:
            ok = all(x <= 1.5 for x in ratios.values())
            w(f"Against the target ({big:,} within 1.5× of {small:,}, on both stores): "
              f"**{'met' if ok else 'missed'}**: " + "; ".join(
                  f"{st}, {'cache' if ttl else 'store'}: {x:.2f}×" for (st, ttl), x in ratios.items()) + ". "
              "The service's own time is the mean of its `http_request_duration_seconds` over the "
              "timed pages (from the request reaching its middleware to the response being ready, "
              "the body in memory: a page is a binary search for the cursor's position in the "
              "snapshot and a copy of the page's bytes, src/catalogue/); the rest of the client's time is loopback, the client and the "
              "machine. (Measured one service at a time, with two timed walks right after the "
              "warm-up walk that made the cold fill and its settle refill, the cached DynamoDB "
              "row once read 2.46×: that measured the machine in those seconds, not the page.)")
            w("")
    vis = every("visible")
    if vis:
        out["visible"] = b = []
        w = b.append
        w("### A write through any task, listed by every task (target: within 2 s)")
        w("")
        for r in vis:
            n = len(r["services"])
            w(f"{n} services on one dynalite table with {r['shows']:,} shows, production cache "
              "settings (TTL 1 s, so a check at most every 0.75 s while requests come; safety net "
              "300 s), each polled all along as a task behind the load balancer is (bench/visible.py: "
              f"`GET /v1/shows` with `If-None-Match` every {r['poll_ms']} ms, keep-alive). "
              f"{r['writes']} times, after a random pause of 0 to 1 s, a one-show feed is posted "
              "through the services in turn; the delay is from the POST's 2xx to the end of the "
              "first GET on a service whose catalogue lists the show. The writes start once every "
              "service's own counters show the steady state (its cold fill settled, then a check "
              "that found nothing changed). The service a write went through lists it at its next "
              "GET (its own write invalidates its snapshot); the others at their next check. Either "
              "way the change is applied from the store's change log: the written show is read "
              "again (one strongly consistent read) and spliced into the snapshot, so the delay "
              "does not grow with the catalogue; the refills column counts, per service, the "
              "refills of each kind during the writes (`full` would be a read of the whole index).")
            w("")
            w("| service | writes | p50 ms | max ms | not listed within "
              f"{r['deadline_s']:.0f} s | refills: delta / full | delays, ms (* through this service) |")
            w("|---|---:|---:|---:|---:|---:|---|")
            made = lambda sv: "–" if not sv.get("refills") else \
                f"{sv['refills']['delta']:.0f} / {sv['refills']['full']:.0f}" + \
                (f" ({sv['refills']['delta_read_units']:.1f} RU each)" if sv['refills'].get('delta') else "")
            fmt = lambda x: "–" if x is None else f"{x:,.0f}"
            for k, sv in enumerate(r["services"]):
                ds = ", ".join(("–" if d is None else f"{d:.0f}") + ("*" if r["writers"][i] == k else "")
                               for i, d in enumerate(sv["delays_ms"]))
                w(f"| task {k + 1} | {len(sv['delays_ms'])} | {fmt(sv['p50_ms'])} | {fmt(sv['max_ms'])} | "
                  f"{sv['missed']} | {made(sv)} | {ds} |")
            w(f"| every task | {sum(len(sv['delays_ms']) for sv in r['services'])} | {fmt(r['p50_ms'])} | "
              f"**{fmt(r['max_ms'])}** | {r['missed']} | | |")
            w(f"| the tasks a write did not go through | {r['writes'] * (n - 1)} | {fmt(r['others_p50_ms'])} | "
              f"{fmt(r['others_max_ms'])} | | | |")
            w("")
            ok = r["missed"] == 0 and r["max_ms"] is not None and r["max_ms"] <= 2000
            worst = "no delay measured" if r["max_ms"] is None else f"max {fmt(r['max_ms'])} ms"
            late = f", {r['missed']} not listed within the deadline" if r["missed"] else ""
            w(f"Against the target (every task within 2 s): **{'met' if ok else 'missed'}**, "
              f"{worst}{late}.")
            w("")
    return out


def splice(text, section, rows):
    """`text` with the section replaced: whole when the rows hold every row set, else just
    the blocks they hold (each noted with the run it is from)."""
    have = blocks(rows)
    if BEGIN not in text or END not in text or len(have) == len(BLOCKS):
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            return head + section + rest.split(END, 1)[1]
        return text.rstrip("\n") + ("\n\n" if text.strip() else "") + section + "\n"
    machine = next((r for r in rows if r.get("kind") == "machine"), {})
    end = next((r for r in rows if r.get("kind") == "end"), {})
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    reproduce = next(line for line in section.split("\n") if line.startswith("Reproduce: "))
    body = "\n".join(reproduce if line.startswith("Reproduce: ") else line for line in body.split("\n"))
    for key, lines in have.items():
        lines = [f"*This block: `bench/run.sh --only {key}`, {measured(machine, end)}; the rest "
                 "of the section is from the run named at its top.*", "", *lines]
        new = "\n".join([block_begin(key), "", *lines, block_end(key)])
        if block_begin(key) in body and block_end(key) in body:
            before, after = body.split(block_begin(key), 1)
            body = before + new + after.split(block_end(key), 1)[1]
        else:  # a block this file does not have yet: in section order among those it has
            order = list(BLOCKS)
            later = [body.index(block_begin(k)) for k in order[order.index(key) + 1:] if block_begin(k) in body]
            earlier = [body.index(block_end(k)) + len(block_end(k)) for k in order[:order.index(key)]
                       if block_end(k) in body]
            if later:
                body = body[:min(later)] + new + "\n\n" + body[min(later):]
            else:
                at = max(earlier) if earlier else len(body)
                body = body[:at] + "\n\n" + new + body[at:]
    return head + BEGIN + body + END + tail


if __name__ == "__main__":
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    section = "\n".join(render(rows))
    if len(sys.argv) > 3 and sys.argv[2] == "--splice":
        path = sys.argv[3]
        text = open(path).read()
        open(path, "w").write(splice(text, section, rows))
    else:
        print(section)
