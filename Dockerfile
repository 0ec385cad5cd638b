# radscore container: multi-stage build, small non-root runtime image, read-only root.
#
#   docker build -t radscore .
#   docker run --read-only --tmpfs /tmp -v radscore-data:/var/lib/radscore -p 8080:8080 radscore
#
# Data (SQLite database and blobs) live in the /var/lib/radscore volume, the only place the
# service writes; everything else in the image is read-only at run time (--read-only).
# For several replicas on PostgreSQL and S3-compatible storage see docs/deployment.md.

# --- build: the release binary and the ONNX Runtime library ------------------------------
FROM rust:1.95-bookworm AS build
# python3 + pip: scripts/setup.sh takes libonnxruntime.so out of the pinned onnxruntime
# wheel from PyPI (the only download besides crates).
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
COPY assets ./assets
COPY openapi.yaml ./
COPY scripts ./scripts
COPY training/requirements.txt ./training/requirements.txt
RUN cargo build --release --locked --bin radscore \
    && strip target/release/radscore
RUN scripts/setup.sh ort

# --- runtime: debian-slim, no compiler, no curl --------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to S3-compatible storage and PostgreSQL. libstdc++ (ONNX Runtime)
# and glibc are in the base image.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --home-dir /var/lib/radscore radscore \
    && mkdir -p /var/lib/radscore && chown radscore:radscore /var/lib/radscore
COPY --from=build /src/target/release/radscore /usr/local/bin/radscore
COPY --from=build /src/.ort/lib/libonnxruntime.so /usr/local/lib/radscore/libonnxruntime.so
COPY models /usr/share/radscore/models
ENV ORT_DYLIB_PATH=/usr/local/lib/radscore/libonnxruntime.so \
    RADSCORE_MODEL_DIR=/usr/share/radscore/models/demo \
    DATABASE_URL=sqlite:///var/lib/radscore/radscore.db \
    RADSCORE_BLOB_DIR=/var/lib/radscore/blobs \
    RADSCORE_BIND=0.0.0.0:8080 \
    RADSCORE_LOG_FORMAT=json
USER 10001:10001
VOLUME /var/lib/radscore
EXPOSE 8080
# `radscore healthcheck` GETs /healthz on RADSCORE_BIND (or RADSCORE_ADMIN_ADDR) over loopback
# (no curl in the image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/radscore", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/radscore"]
CMD ["serve"]
