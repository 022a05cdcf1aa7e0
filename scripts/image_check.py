#!/usr/bin/env python3
"""The container checks: the image run by a real engine as ECS runs it.

scripts/image.sh runs this after building the image, with the engine in DOCKER_HOST and a
DynamoDB emulator (dynalite) on the host. Every check fails loudly; nothing is skipped.

- the image: user 65532, the HEALTHCHECK the task definition also runs, no shell and no
  package manager in its files, its size (target: at most 60 MB);
- local mode, `--read-only` with a tmpfs only on its data folder, `--cap-drop ALL`: uid and
  capabilities of the running process, /health, the seed's flow (token, post, list), the
  HEALTHCHECK reporting healthy, nothing written outside the tmpfs;
- dynamodb mode with the task definition's environment, read from the service module's
  Terraform (so the two cannot drift), pointed at the emulator and at a local-mode issuer
  (the only overrides, printed): the seed's flow; start to /health 200, five times, median
  printed (target: at most 1 s); then `docker stop` with a feed in flight:
  the feed is answered, the container exits 0 within the drain and shutdown budget, and the
  whole feed is in the table.

Containers run on the host's network (the engine here has no bridge) on free loopback
ports, each labelled with --label so scripts/image.sh removes them on any exit.
"""

import argparse
import base64
import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVICE_TF = "infra/modules/service/main.tf"
SIZE_LIMIT_MB = 60
START_LIMIT_S = 1.0
# src/config/server.rs's defaults outside local mode (server.drainseconds, server.shutdowntimeoutseconds):
# the longest a graceful stop may take.
DRAIN_S = 5
SHUTDOWN_S = 20
USER = "65532:65532"
# Local mode's data folder: APP__STORE__PATH's default (data/shows.db) under the image's
# working directory.
DATA_DIR = "/home/nonroot/data"
LOCAL_CLIENT = ("local-client", "local-secret")
# What an image without a shell or a package manager has none of.
FORBIDDEN = {"sh", "bash", "dash", "ash", "zsh", "busybox", "apt", "apt-get", "dpkg", "rpm", "apk", "microdnf", "yum"}

args = None


def fail(msg):
    raise SystemExit(f"image check FAILED: {msg}")


def check(cond, msg):
    if not cond:
        fail(msg)
    print(f"  ok  {msg}")


def docker(*argv, check_rc=True, capture=True, input_bytes=None):
    proc = subprocess.run(
        [args.docker, *argv],
        capture_output=capture,
        input=input_bytes,
    )
    if check_rc and proc.returncode != 0:
        fail(f"docker {' '.join(argv[:3])} … exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}")
    return proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_health(base, container, limit_s=30):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            status, _ = http("GET", f"{base}/health", timeout=1)
            if status == 200:
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    logs = docker("logs", container, check_rc=False)
    fail(f"{base}/health did not answer 200 within {limit_s} s; logs:\n{logs.stdout.decode(errors='replace')}{logs.stderr.decode(errors='replace')}")


def run(*opts, env, command=("serve",), detach=True):
    argv = ["run", "--label", args.label, "--network", "host", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--read-only"]
    if detach:
        argv.append("--detach")
    else:
        argv.append("--rm")
    for k, v in env.items():
        argv += ["--env", f"{k}={v}"]
    return docker(*argv, *opts, args.image, *command)


def data_tmpfs():
    # The only place a local-mode container writes: its SQLite file and the issuer's key.
    return ("--tmpfs", f"{DATA_DIR}:rw,noexec,nosuid,size=64m,uid=65532,gid=65532,mode=0700")


def token(issuer_base):
    basic = base64.b64encode(":".join(LOCAL_CLIENT).encode()).decode()
    status, body = http(
        "POST", f"{issuer_base}/oauth/token",
        body=b"grant_type=client_credentials&scope=shows.read+shows.write",
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    check(status == 200, f"a token from {issuer_base}/oauth/token (status {status})")
    return json.loads(body)["access_token"]


def listing(base, tok):
    status, body = http("GET", f"{base}/v1/shows", headers={"Authorization": f"Bearer {tok}"})
    if status != 200:
        fail(f"GET {base}/v1/shows answered {status}: {body[:300]!r}")
    return json.loads(body)["response"]


def post(base, tok, feed_bytes, timeout=60):
    return http("POST", f"{base}/v1/shows", body=feed_bytes,
                headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"},
                timeout=timeout)


def by_slug(shows):
    return sorted(shows, key=lambda s: s["slug"])


def seed_flow(base, issuer_base, what):
    tok = token(issuer_base)
    check(listing(base, tok) == [], f"{what}: the catalogue is empty at first")
    with open(os.path.join(ROOT, "tests/fixtures/feed-12.json"), "rb") as f:
        status, body = post(base, tok, f.read())
    check(status == 201 and json.loads(body).get("written") == 12, f"{what}: the sample feed is stored (status {status}, {body[:80]!r})")
    with open(os.path.join(ROOT, "tests/fixtures/feed-12.expected.json")) as f:
        expected = json.load(f)["response"]
    check(by_slug(listing(base, tok)) == by_slug(expected), f"{what}: the listing is the expected catalogue")
    return tok


def proc_status(container):
    pid = docker("inspect", "-f", "{{.State.Pid}}", container).stdout.decode().strip()
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)


# ---------------------------------------------------------------------------------------
# The task definition's environment, from the Terraform.


def task_environment(env_name, port, metrics_port_default):
    """local.environment of the service module, each value resolved like
    tests/infra_consistency.rs's sample_value(): literals as written, the root module's
    inputs as sample values. An expression this does not know fails the check."""
    with open(os.path.join(ROOT, SERVICE_TF)) as f:
        text = f.read()
    m = re.search(r"^  environment = \{\n(.*?)^  \}", text, re.S | re.M)
    if not m:
        fail(f"{SERVICE_TF}: no `environment = {{ … }}` in locals")
    samples = {
        "var.env": env_name,
        "tostring(local.container_port)": str(port),
        "tostring(local.metrics_port)": str(metrics_port_default),
        "var.app_environment.region": "ap-southeast-2",
        "var.app_environment.table_name": f"shows-{env_name}",
        "var.app_environment.gsi_name": "gsi_drm_episode",
        "var.app_environment.user_pool_id": "ap-southeast-2_Example",
        'join(",", var.app_environment.client_ids)': "exampleclientid",
        # The partner map as Terraform renders it (tests/infra_consistency.rs evaluates
        # the expression itself); the client id is the one above.
        'join(",", [for partner, ids in var.app_environment.partner_client_ids : "${partner}=${join("|", ids)}"])': "partner=exampleclientid",
        "var.app_environment.resource_server_identifier": f"https://show-service-{env_name}.api",
    }
    env = {}
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        km = re.fullmatch(r"([A-Z0-9_]+)\s*=\s*(.+)", line)
        if not km:
            fail(f"{SERVICE_TF}: cannot read `{line}` in local.environment")
        key, expr = km.groups()
        if re.fullmatch(r'"[^"$]*"', expr):
            env[key] = expr[1:-1]
        elif expr in samples:
            env[key] = samples[expr]
        else:
            fail(f"{SERVICE_TF}: no sample value for `{expr}` ({key}); add one to image_check.py")
    if len(env) < 5 or env.get("APP_ENV") != env_name or env.get("APP__STORE__KIND") != "dynamodb":
        fail(f"{SERVICE_TF}: local.environment read as {env}")
    return env


def local_number(name):
    with open(os.path.join(ROOT, SERVICE_TF)) as f:
        m = re.search(rf"^\s*{name}\s*=\s*(\d+)\s*$", f.read(), re.M)
    if not m:
        fail(f"{SERVICE_TF}: no `{name} = <number>`")
    return int(m.group(1))


# ---------------------------------------------------------------------------------------


def image_facts():
    print("== the image")
    info = json.loads(docker("image", "inspect", args.image).stdout)[0]
    cfg = info["Config"]
    check(cfg.get("User") == USER, f"runs as {USER} (image USER {cfg.get('User')!r})")
    hc = (cfg.get("Healthcheck") or {}).get("Test")
    check(hc == ["CMD", "/show-service", "healthcheck"], f"HEALTHCHECK is /show-service healthcheck ({hc})")
    size_mb = info["Size"] / 1e6
    print(f"  image size: {size_mb:.1f} MB ({info['Size']} bytes)")
    check(size_mb <= SIZE_LIMIT_MB, f"image size {size_mb:.1f} MB <= {SIZE_LIMIT_MB} MB")

    cid = docker("create", "--label", args.label, args.image).stdout.decode().strip()
    tar_bytes = docker("export", cid).stdout
    docker("rm", cid)
    names = []
    binary = None
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            names.append(member.name)
            if member.name.lstrip("./") == "show-service":
                binary = tar.extractfile(member).read()
    found = sorted(n for n in names if os.path.basename(n) in FORBIDDEN)
    check(not found, f"no shell and no package manager among its {len(names)} files ({found or 'none found'})")
    check(binary is not None, "/show-service is in the image")
    # The base leaves out glibc's iconv converters: the binary must not need them.
    path = os.path.join(args.workdir, "show-service")
    with open(path, "wb") as f:
        f.write(binary)
    syms = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True, text=True, check=True).stdout
    check("iconv" not in syms, "the binary imports no iconv function (the base has no gconv modules)")
    run_shell = docker("run", "--rm", "--label", args.label, "--network", "host", "--entrypoint", "/bin/sh", args.image, "-c", "true", check_rc=False)
    check(run_shell.returncode != 0, f"`--entrypoint /bin/sh` cannot run (exit {run_shell.returncode})")


def local_mode():
    print("== local mode, --read-only, tmpfs on the data folder only, --cap-drop ALL")
    port = free_port()
    env = {"APP_ENV": "local", "APP__SERVER__HOST": "127.0.0.1", "APP__SERVER__PORT": str(port)}
    cid = run(*data_tmpfs(), env=env).stdout.decode().strip()
    base = f"http://127.0.0.1:{port}"
    wait_health(base, cid)
    check(True, "/health 200")
    st = proc_status(cid)
    uids, gids = st["Uid"].split(), st["Gid"].split()
    check(set(uids) == {"65532"} and set(gids) == {"65532"}, f"the process runs as 65532 (Uid {uids}, Gid {gids})")
    check(int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0 and int(st["CapPrm"], 16) == 0,
          f"no capabilities (CapEff {st['CapEff'].strip()}, CapBnd {st['CapBnd'].strip()})")
    seed_flow(base, base, "local mode")
    # The engine itself adds the tmpfs's mount point (and so changes its parents); with
    # --read-only nothing else can change.
    mount_point = {"/home", "/home/nonroot", DATA_DIR}
    diff = [line for line in docker("diff", cid).stdout.decode().splitlines() if line.split(" ", 1)[1] not in mount_point]
    check(diff == [], f"nothing written outside the tmpfs (docker diff beyond its mount point: {diff or 'none'})")
    # The image's own HEALTHCHECK (interval 15 s): the engine runs it and reports.
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.decode().strip()
        if status in ("healthy", "unhealthy"):
            break
        time.sleep(0.5)
    check(status == "healthy", f"the HEALTHCHECK reports healthy (status {status!r})")
    docker("rm", "-f", cid)


def start_latency(task_env):
    """As ECS starts a task: the task definition's environment, read-only, no tmpfs."""
    print("== container start to /health 200, 5 times (dynamodb mode, as ECS starts it)")
    times, engine = [], []
    for _ in range(5):
        port = free_port()
        env = dict(task_env, APP__SERVER__PORT=str(port), APP__METRICS__PORT=str(free_port()))
        argv = ["create", "--label", args.label, "--network", "host", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges", "--read-only"]
        for k, v in env.items():
            argv += ["--env", f"{k}={v}"]
        cid = docker(*argv, args.image).stdout.decode().strip()
        started = time.monotonic()
        docker("start", cid)
        engine.append(time.monotonic() - started)
        wait_health(f"http://127.0.0.1:{port}", cid, limit_s=10)
        times.append(time.monotonic() - started)
        docker("rm", "-f", cid)
    median = statistics.median(times)
    print(f"  start to /health 200: median {median * 1000:.0f} ms of {[round(t * 1000) for t in times]} ms"
          f" (of which `docker start` returning: median {statistics.median(engine) * 1000:.0f} ms)")
    check(median <= START_LIMIT_S, f"median start {median * 1000:.0f} ms <= {START_LIMIT_S * 1000:.0f} ms")


def dynamodb_mode():
    print("== dynamodb mode with the task definition's environment")
    # The issuer the service trusts: the same image in local mode, with the resource
    # server the task definition names (Cognito's place in AWS).
    issuer_port = free_port()
    issuer = f"http://127.0.0.1:{issuer_port}"
    port, metrics_port = free_port(), free_port()
    env = task_environment("dev", local_number("container_port"), local_number("metrics_port"))
    overrides = {
        # Loopback ports of this machine instead of the task's own network namespace.
        "APP__SERVER__HOST": "127.0.0.1",
        "APP__SERVER__PORT": str(port),
        "APP__METRICS__HOST": "127.0.0.1",
        "APP__METRICS__PORT": str(metrics_port),
        # The emulator instead of DynamoDB, the local issuer instead of Cognito.
        "APP__DYNAMODB__ENDPOINTOVERRIDE": args.dynamodb_endpoint,
        "APP__AUTH__ISSUER": issuer,
        "APP__AUTH__JWKSURL": f"{issuer}/.well-known/jwks.json",
        "APP__COGNITO__CLIENTID": LOCAL_CLIENT[0],
    }
    print(f"  from {SERVICE_TF}: {env}")
    print(f"  overridden here: {overrides}")
    env.update(overrides)
    issuer_env = {"APP_ENV": "local", "APP__SERVER__HOST": "127.0.0.1", "APP__SERVER__PORT": str(issuer_port),
                  "APP__AUTH__PUBLICURL": issuer, "APP__AUTH__RESOURCESERVER": env["APP__AUTH__RESOURCESERVER"]}
    issuer_id = run(*data_tmpfs(), env=issuer_env).stdout.decode().strip()
    wait_health(issuer, issuer_id)

    created = run(env=env, command=("table", "create", "--wait-seconds", "30"), detach=False)
    check(created.returncode == 0, "`show-service table create` with the same environment creates the table")

    cid = run(env=env).stdout.decode().strip()
    base = f"http://127.0.0.1:{port}"
    wait_health(base, cid)
    check(True, "/health 200 (read-only root, no tmpfs, no capabilities)")
    tok = seed_flow(base, issuer, "dynamodb mode")
    status, body = http("GET", f"http://127.0.0.1:{metrics_port}/metrics")
    check(status == 200 and b"# TYPE" in body, "the metrics listener answers on the task definition's metrics settings")
    start_latency(env)

    print("== docker stop with a feed in flight")
    # The feed's request is sent but for its last bytes; SIGTERM arrives (the service
    # reports not ready); then the rest is sent. So the feed is in flight at the signal,
    # whatever the machine's speed.
    count = 1000
    feed = subprocess.run([sys.executable, args.feed_tool, str(count), "--prefix", "stop-"], capture_output=True, check=True).stdout
    expected = json.loads(subprocess.run([sys.executable, args.feed_tool, str(count), "--prefix", "stop-", "--expected"],
                                         capture_output=True, check=True).stdout)["response"]
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = (f"POST /v1/shows HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {tok}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(feed)}\r\nConnection: close\r\n\r\n").encode()
    conn.sendall(head + feed[:-64])
    stop = {}

    def stopper():
        started = time.monotonic()
        stop["proc"] = docker("stop", "--time", str(local_number("stopTimeout")), cid, check_rc=False)
        stop["seconds"] = time.monotonic() - started

    stopping = threading.Thread(target=stopper)
    stopping.start()
    deadline = time.monotonic() + 10
    draining = False
    while time.monotonic() < deadline and not draining:
        try:
            draining = http("GET", f"{base}/health/ready", timeout=1)[0] == 503
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    check(draining, "SIGTERM reached the service while the feed was in flight (/health/ready 503)")
    conn.sendall(feed[-64:])
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    conn.close()
    stopping.join()
    status_line, _, rest = response.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    check(status_line.startswith(b"HTTP/1.1 201") and json.loads(body).get("written") == count,
          f"the feed in flight was answered and stored whole ({status_line.decode(errors='replace')}, {body[:80]!r})")
    check(stop["proc"].returncode == 0, f"docker stop succeeded ({stop['proc'].stderr.decode(errors='replace').strip()})")
    stop_s = stop["seconds"]
    exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.decode().strip()
    print(f"  docker stop took {stop_s:.1f} s")
    check(exit_code == "0", f"the container exited 0 on SIGTERM (exit {exit_code})")
    check(stop_s <= DRAIN_S + SHUTDOWN_S, f"stopped in {stop_s:.1f} s <= drain {DRAIN_S} s + shutdown {SHUTDOWN_S} s")
    docker("rm", cid)

    # Nothing written half: a new task sees every eligible show of the feed, and the seed's.
    cid = run(env=env).stdout.decode().strip()
    wait_health(base, cid)
    shows = listing(base, tok)
    stored = [s for s in shows if s["slug"].startswith("show/stop-")]
    check(by_slug(stored) == by_slug(expected), f"a new task lists the whole feed ({len(stored)} of {len(expected)} eligible shows)")
    docker("rm", "-f", cid, issuer_id)
    return stop_s


def main():
    global args
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--label", required=True, help="key=value put on every container")
    parser.add_argument("--dynamodb-endpoint", required=True)
    parser.add_argument("--feed-tool", required=True)
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args()
    image_facts()
    local_mode()
    dynamodb_mode()
    print("image check: every check passed")


if __name__ == "__main__":
    main()
