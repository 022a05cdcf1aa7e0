# show-service image. Stages:
#   chef      Rust toolchain + cargo-chef
#   planner   dependency recipe from Cargo.toml/Cargo.lock
#   builder   dependencies cooked in their own layer (reused until the manifests change),
#             then `cargo build --release --locked`: the same build command CI runs
#   test      scripts/test.sh on the same sources, run with two capabilities (buildspec.yml,
#             through scripts/image.sh --ci: docker build --target test, then docker run)
#   prebuilt  a binary built outside the image (scripts/image.sh: the test run's own build)
#   runtime   (default) distroless, non-root, just the binary
#
# docker build -t show-service .
#
# No `# syntax=` line: the engine's built-in Dockerfile frontend builds this file, so a
# build needs no frontend image from a registry. The bases are build arguments whose
# defaults are the public images; scripts/image.sh passes bases it assembles from Debian's
# packages where no public registry is reachable (README, "Container image").

ARG RUST_VERSION=1.95
ARG RUST_IMAGE=rust:${RUST_VERSION}-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
# The stage the runtime copies /show-service from: `builder` (from source) or `prebuilt`.
ARG BINARY_FROM=builder

FROM ${NODE_IMAGE} AS node

FROM ${RUST_IMAGE} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin show-service \
    && install -m 0755 target/release/show-service /show-service

# The project's test command on the image's sources. There is no Terraform provider
# folder in this image, so infra-check reports its Terraform parts as SKIPPED here;
# they gate every change in the project's CI instead.
FROM chef AS test
# The DynamoDB tests run dynalite, which needs Node.js 20 (Debian bookworm ships 18).
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
    && rustup component add rustfmt clippy \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --locked --all-targets --recipe-path recipe.json
COPY . .
# No container engine runs inside an image build: the container checks (scripts/image.sh)
# are reported as SKIPPED here, like the Terraform parts above.
ENV ALLOW_SKIP_TERRAFORM=1 ALLOW_SKIP_IMAGE=1 CI=true
# Run, not built: `docker run --cap-add SYS_ADMIN --cap-add LINUX_IMMUTABLE` (the storage
# fault tests mount a tmpfs and set chattr +i; a build step has neither capability).
CMD ["scripts/test.sh"]

# scripts/image.sh's fast path: the build context holds just this file and the binary.
FROM scratch AS prebuilt
COPY show-service /show-service

FROM ${BINARY_FROM} AS binary

FROM ${RUNTIME_BASE} AS runtime
COPY --from=binary /show-service /show-service
# Not "local": in a container the service uses DynamoDB and an external issuer unless
# told otherwise; ECS sets the real environment name.
ENV APP_ENV=prod \
    APP__SERVER__HOST=0.0.0.0 \
    APP__SERVER__PORT=8080 \
    APP__LOG__FORMAT=json
# distroless "nonroot" (65532); the task definition runs as the same user. Its home is
# the working directory, so relative paths (APP__STORE__PATH=data/shows.db, the local
# issuer's key beside it) are writable when a local-mode container needs them (compose).
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/show-service", "healthcheck"]
ENTRYPOINT ["/show-service"]
CMD ["serve"]
