#!/usr/bin/env bash
# The service's container image, built and run by a real engine; tags it show-service:local.
#
#   scripts/image.sh                 the runtime stage from the binary the tests build (the
#                                    dev profile's, stripped), then the container checks
#                                    (scripts/image_check.py): what the test command runs
#   scripts/image.sh --binary PATH   the same with that binary (e.g. target/release/show-service)
#   scripts/image.sh --no-check      build, do not run the checks
#   scripts/image.sh --full          every stage from source once, timed: the test stage
#                                    (scripts/test.sh inside), the runtime from the builder
#                                    stage, then the runtime again after a one-line source
#                                    change (the cooked dependency layer must be reused)
#   scripts/image.sh --ci TAG        what CodeBuild runs (buildspec.yml): the test gate, then
#                                    the runtime tagged TAG, with the engine and bases at hand
#
# The engine: the one DOCKER_HOST names when it is set (an engine on this machine: the
# checks reach containers on loopback ports and read their /proc). Otherwise, as root, Debian's
# docker.io (installed when missing), started on a private socket and data folder with
# `--storage-driver vfs --iptables=false --bridge=none` and stopped on exit; containers use
# the host's network. Every exit path removes what this run started: containers, the
# engine, its mounts and folders.
#
# The bases: no public image registry is assumed reachable. The Dockerfile's base
# arguments are pointed at images assembled here from the machine's Debian packages
# (README, "Container image", says how they differ from the public ones):
#   runtime  libc6, libgcc-s1, ca-certificates, tzdata, netbase, os-release, the nonroot
#            user 65532 (distroless cc-debian12's contents; no shell, no package manager)
#   rust     (--full) a Debian bookworm root made by mmdebstrap with the compiler's C
#            toolchain, plus this machine's rustup toolchain (the Dockerfile's RUST_VERSION)
#   node     (--full) Node.js from this machine, as the node image lays it out
#
# A missing engine or an unreachable package source fails with one line naming it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

tag=show-service:local
runtime_base=show-service-base/cc-debian12:nonroot
rust_base=show-service-base/rust:bookworm
node_base=show-service-base/node:20-bookworm-slim
# The same labels mark every container a check starts, so the exit trap finds them all.
run_label="show-service-image-check=$$"
# The client: the engine package's own when this script starts the engine (it speaks to
# its daemon and has BuildKit built in), else whatever `docker` is.
docker_bin=docker
docker() { command "$docker_bin" "$@"; }

die() {
  echo "image.sh: $*" >&2
  exit 1
}

mode=fast
binary=
check=1
ci_tag=
while [[ $# -gt 0 ]]; do
  case $1 in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --no-check) check=0; shift ;;
    --full) mode=full; shift ;;
    --ci) mode=ci; ci_tag=${2:?--ci needs the image tag}; shift 2 ;;
    *) die "unknown argument $1 (see the head of scripts/image.sh)" ;;
  esac
done

# ---------------------------------------------------------------------------------------
# The build commands. CodeBuild (buildspec.yml: `scripts/image.sh --ci TAG`) and this
# machine run these two; only the base arguments differ.
# Here (not in CodeBuild): the engine has no bridge, so builds use the host's network, and
# the bases are the ones assembled below.
local_args=()

# The test gate: the test stage is built (toolchain, cooked dependencies, sources), then
# run. Not a RUN step of the build: the storage fault tests need CAP_SYS_ADMIN and
# CAP_LINUX_IMMUTABLE (tmpfs mounts, chattr +i), which no build step is given.
run_test_stage() { # TAG CONTEXT
  docker build "${local_args[@]}" --target test --tag "$1" "$2"
  docker run --rm --network host --cap-add SYS_ADMIN --cap-add LINUX_IMMUTABLE "$1"
}

build_runtime() { # TAG CONTEXT [more build arguments]
  local t=$1 ctx=$2
  shift 2
  docker build "${local_args[@]}" "$@" --tag "$t" "$ctx"
}

# ---------------------------------------------------------------------------------------
# Cleanup: every exit path.
state=
dockerd_pid=
checker_pid=
cleanup() {
  local rc=$?
  set +e
  if [[ -n $checker_pid ]]; then
    kill -TERM "$checker_pid" 2>/dev/null
    wait "$checker_pid" 2>/dev/null
  fi
  if [[ -n ${DOCKER_HOST:-} ]] && docker info >/dev/null 2>&1; then
    local ids
    ids=$(docker ps -aq --filter "label=$run_label")
    [[ -n $ids ]] && docker rm -f $ids >/dev/null
  fi
  if [[ -n $dockerd_pid ]]; then
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
    # Its containerd and shims exit with it; anything still holding the folder goes too.
    local pids
    pids=$(pgrep -f -- "$state/" || true)
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
  fi
  if [[ -n $state ]]; then
    # Deepest first: overlay or bind mounts the engine left under its folders.
    awk -v p="$state/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
      while read -r m; do umount -l "$m"; done
    rm -rf "$state"
  fi
  if [[ -n ${dynalite_pid:-} ]]; then
    kill "$dynalite_pid" 2>/dev/null
    wait "$dynalite_pid" 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A short folder: the engine's sockets live under it (unix socket paths are short).
state=$(mktemp -d /tmp/ssimg.XXXXXX)

# ---------------------------------------------------------------------------------------
# The engine.
start_engine() {
  if [[ -n ${DOCKER_HOST:-} ]]; then
    command -v docker >/dev/null || die "DOCKER_HOST is set but there is no docker command"
    # The builds need BuildKit: the buildx plugin, or a client with it built in (20.10's).
    if ! docker buildx version >/dev/null 2>&1; then
      [[ -x /usr/bin/docker ]] && /usr/bin/docker version --format '{{.Client.Version}}' 2>/dev/null | grep -q '^20\.' ||
        die "no BuildKit client: install docker's buildx plugin (or Debian's docker.io for its client)"
      docker_bin=/usr/bin/docker
    fi
    docker info >/dev/null 2>&1 || die "the engine at DOCKER_HOST=$DOCKER_HOST does not answer"
    return
  fi
  [[ $(id -u) == 0 ]] || die "no engine: set DOCKER_HOST, or run as root to start Debian's docker.io"
  if [[ ! -x /usr/sbin/dockerd ]]; then
    echo "image.sh: installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
      >"$state/apt.log" 2>&1 ||
      die "no engine: dockerd is missing and 'apt-get install docker.io' failed ($(tail -n 1 "$state/apt.log"))"
  fi
  # The engine package's own client: it speaks to its daemon and has BuildKit built in.
  docker_bin=/usr/bin/docker
  mkdir -p "$state/data" "$state/exec"
  DOCKER_BUILDKIT=1 /usr/sbin/dockerd --data-root "$state/data" --exec-root "$state/exec" \
    --pidfile "$state/dockerd.pid" --host "unix://$state/docker.sock" \
    --storage-driver vfs --iptables=false --ip6tables=false --bridge=none \
    >"$state/dockerd.log" 2>&1 &
  dockerd_pid=$!
  export DOCKER_HOST="unix://$state/docker.sock"
  for _ in $(seq 300); do
    docker info >/dev/null 2>&1 && return
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  die "no engine: dockerd did not start ($(tail -n 1 "$state/dockerd.log"))"
}

# ---------------------------------------------------------------------------------------
# The bases.

# download_debs DIR PACKAGE...: the packages' .deb files from the machine's apt sources.
download_debs() {
  local dir=$1
  shift
  mkdir -p "$dir"
  if ! (cd "$dir" && apt-get download "$@" >"$state/download.log" 2>&1); then
    # Lists may be missing or stale; one refresh, then a second try.
    apt-get update -qq >"$state/update.log" 2>&1 || true
    (cd "$dir" && apt-get download "$@" >"$state/download.log" 2>&1) ||
      die "package source unreachable: 'apt-get download $*' failed ($(grep -m1 -E '^(E|Err):' "$state/download.log" || tail -n 1 "$state/download.log"))"
  fi
}

# The runtime base: distroless cc-debian12's contents, from the same Debian packages.
assemble_runtime_base() {
  docker image inspect "$runtime_base" >/dev/null 2>&1 && return
  local r=$state/runtime-root debs=$state/runtime-debs
  download_debs "$debs" libc6 libgcc-s1 ca-certificates tzdata netbase base-files
  mkdir -p "$r"
  for deb in "$debs"/*.deb; do
    case $deb in
      */base-files_*) dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$r" ./etc/os-release ./usr/lib/os-release 2>/dev/null ||
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$r" ./usr/lib/os-release ;;
      *) dpkg-deb -x "$deb" "$r" ;;
    esac
  done
  [[ -e $r/etc/os-release ]] || ln -s ../usr/lib/os-release "$r/etc/os-release"
  # update-ca-certificates' bundle (every certificate Debian ships is enabled by default),
  # made without running the package's scripts.
  mkdir -p "$r/etc/ssl/certs"
  find "$r/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$r/etc/ssl/certs/ca-certificates.crt"
  # glibc's iconv converters: nothing in the service calls iconv (image_check.py checks
  # the binary imports none), and they are 8 of the base's 17 MB.
  rm -rf "$r/usr/lib/x86_64-linux-gnu/gconv"
  # Documentation but the licences, as distroless keeps them.
  find "$r/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$r/usr/share/man" "$r/usr/share/lintian" "$r/usr/share/info" "$r/usr/sbin"
  find "$r" -depth -type d -empty -delete
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  printf 'hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n' >"$r/etc/nsswitch.conf"
  mkdir -p "$r/tmp" "$r/root" "$r/home/nonroot"
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root" "$r/home/nonroot"
  chown 65532:65532 "$r/home/nonroot"
  tar --numeric-owner -C "$r" -c . |
    docker import --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
      - "$runtime_base" >/dev/null
  rm -rf "$r" "$debs"
}

# The Rust toolchain base (--full): Debian bookworm with what rust:*-bookworm brings that
# the stages use (a C toolchain, git, curl, python3), plus this machine's toolchain.
assemble_rust_base() {
  docker image inspect "$rust_base" >/dev/null 2>&1 && return
  command -v mmdebstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap \
      >"$state/apt.log" 2>&1 || die "package source unreachable: 'apt-get install mmdebstrap' failed"
  }
  # The host's default toolchain, when it is the version the Dockerfile names.
  local sysroot version
  sysroot=$(rustc --print sysroot 2>/dev/null) || die "no Rust toolchain on this machine to copy into the build image"
  version=$(rustc --version | cut -d' ' -f2)
  [[ $version == "$(rust_version)".* ]] ||
    die "the Dockerfile asks for Rust $(rust_version); this machine's toolchain is $version"
  # What goes on top of Debian: the toolchain under rustup's layout, as the rust image has it.
  local ctx=$state/rust-ctx
  mkdir -p "$ctx/usr/local/rustup/toolchains" "$ctx/usr/local/cargo/bin" "$ctx/usr/local/share/ca-certificates"
  cp -a "$sysroot" "$ctx/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  rm -rf "$ctx/usr/local/rustup/toolchains/"*/share/doc
  cp "$(command -v rustup)" "$ctx/usr/local/cargo/bin/rustup"
  for proxy in cargo rustc rustdoc cargo-clippy clippy-driver cargo-fmt rustfmt; do
    ln -s rustup "$ctx/usr/local/cargo/bin/$proxy"
  done
  printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\nauto_self_update = "disable"\n\n[overrides]\n' \
    "$version" >"$ctx/usr/local/rustup/settings.toml"
  # Whatever extra certificate authorities this machine trusts for its registry traffic
  # (none on most machines), so cargo in the build reaches what cargo here reaches; npm
  # (the test stage's dynalite) reads the same bundle through NODE_EXTRA_CA_CERTS.
  cp /usr/local/share/ca-certificates/*.crt "$ctx/usr/local/share/ca-certificates/" 2>/dev/null || true
  # One root file system, one layer: vfs copies every layer whole.
  mmdebstrap --variant=minbase --mode=root --format=tar \
    --include=ca-certificates,curl,git,gcc,libc6-dev,libstdc++6,make,pkg-config,python3,python3-venv,procps,xz-utils \
    --customize-hook="cp -a '$ctx/.' \"\$1/\"" \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    bookworm "$state/rust-root.tar" >"$state/mmdebstrap.log" 2>&1 ||
    die "package source unreachable: mmdebstrap bookworm failed ($(grep -m1 -E '^(E|W):' "$state/mmdebstrap.log" || tail -n 1 "$state/mmdebstrap.log"))"
  rm -rf "$ctx"
  docker import \
    --change 'ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
    - "$rust_base" <"$state/rust-root.tar" >/dev/null
  rm -f "$state/rust-root.tar"
}

# The toolchain version the Dockerfile asks for (its RUST_VERSION default).
rust_version() {
  sed -n 's/^ARG RUST_VERSION=//p' Dockerfile
}

# The Node.js base (--full): node and npm where the node image has them.
assemble_node_base() {
  docker image inspect "$node_base" >/dev/null 2>&1 && return
  local node npm_dir ctx=$state/node-ctx
  node=$(command -v node) || die "no Node.js on this machine to copy into the test stage's base"
  [[ $("$node" --version) == v20.* ]] || die "the test stage needs Node.js 20; this machine has $("$node" --version)"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  [[ -f $npm_dir/package.json ]] || die "no npm next to Node.js on this machine"
  mkdir -p "$ctx/usr/local/bin" "$ctx/usr/local/lib/node_modules"
  cp "$node" "$ctx/usr/local/bin/node"
  cp -a "$npm_dir" "$ctx/usr/local/lib/node_modules/npm"
  printf 'FROM scratch\nCOPY usr /usr\n' >"$ctx/Dockerfile"
  docker build --quiet --tag "$node_base" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# ---------------------------------------------------------------------------------------
# The runtime image from a binary built outside it.
build_from_binary() {
  local src=$1 ctx=$state/ctx
  command -v strip >/dev/null && command -v nm >/dev/null ||
    die "binutils is missing (strip, nm): apt-get install binutils"
  mkdir -p "$ctx"
  cp Dockerfile "$ctx/Dockerfile"
  cp "$src" "$ctx/show-service"
  strip --strip-all "$ctx/show-service"
  echo "image.sh: binary $(du -m "$ctx/show-service" | cut -f1) MB stripped ($src)"
  local started=$SECONDS
  build_runtime "$tag" "$ctx" --quiet --build-arg BINARY_FROM=prebuilt >/dev/null
  echo "image.sh: built $tag in $((SECONDS - started)) s (its base $runtime_base: $(docker image inspect -f '{{.Size}}' "$runtime_base" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
  rm -rf "$ctx"
}

check_image() {
  local work=$state/check
  mkdir -p "$work"
  [[ -x .tools/node/node_modules/.bin/dynalite ]] ||
    die "dynalite is missing: run scripts/install-test-tools.sh"
  start_dynalite "$work/dynalite.log"
  # In the background and waited for, so a TERM to this script runs the exit trap at once
  # (bash defers traps while a foreground child runs); the trap stops the checker first.
  python3 scripts/image_check.py --image "$tag" --label "$run_label" --docker "$docker_bin" \
    --workdir "$work" --dynamodb-endpoint "http://127.0.0.1:$dynalite_port" --feed-tool tools/gen-feed.py &
  checker_pid=$!
  wait "$checker_pid"
}

export DOCKER_BUILDKIT=1
[[ $mode == ci ]] || start_engine
case $mode in
  fast)
    local_args=(--network host --build-arg "RUNTIME_BASE=$runtime_base")
    assemble_runtime_base
    if [[ -z $binary ]]; then
      # The dev binary schemathesis.sh and browser-test.sh already built in the test run
      # (lib.sh; SHOW_SERVICE_BIN names another): the build here is a no-op.
      binary=$(debug_binary "$state")
    fi
    [[ -x $binary ]] || die "no binary at $binary"
    build_from_binary "$binary"
    if [[ $check == 1 ]]; then
      check_image
    fi
    ;;
  full)
    local_args=(--network host --progress plain --build-arg "RUNTIME_BASE=$runtime_base"
      --build-arg "RUST_IMAGE=$rust_base" --build-arg "NODE_IMAGE=$node_base")
    started=$SECONDS
    assemble_runtime_base
    assemble_rust_base
    assemble_node_base
    echo "image.sh: bases assembled in $((SECONDS - started)) s"
    # The sources as committed plus the working tree's changes, in a copy this run may edit.
    ctx=$state/src
    mkdir -p "$ctx"
    git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$ctx"
    started=$SECONDS
    build_runtime "$tag" "$ctx"
    echo "image.sh: TIMING cold runtime build (cargo-chef cook + release build): $((SECONDS - started)) s"
    echo "// a one-line change: the rebuild must reuse the cooked dependencies" >>"$ctx/src/main.rs"
    started=$SECONDS
    build_runtime "$tag" "$ctx" 2>&1 | tee "$state/rebuild.log"
    echo "image.sh: TIMING rebuild after a one-line change: $((SECONDS - started)) s"
    # BuildKit's plain progress: "#N [builder 3/5] RUN cargo chef cook ..." then "#N CACHED".
    local_step=$(grep -m1 -o '^#[0-9]* \[builder [0-9/]*\] RUN cargo chef cook' "$state/rebuild.log" | cut -d' ' -f1 || true)
    [[ -n $local_step ]] && grep -q "^$local_step CACHED" "$state/rebuild.log" ||
      die "the rebuild cooked the dependencies again: their layer was not reused"
    echo "image.sh: image size $(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
    started=$SECONDS
    run_test_stage show-service:test "$ctx"
    echo "image.sh: TIMING test stage (cook dev + scripts/test.sh): $((SECONDS - started)) s"
    if [[ $check == 1 ]]; then
      check_image
    fi
    ;;
  ci)
    # CodeBuild: its own engine and the public bases (the Dockerfile's defaults).
    run_test_stage show-service:test .
    build_runtime "$ci_tag" .
    ;;
esac
