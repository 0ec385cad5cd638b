# radscore container: multi-stage build, non-root, read-only-root friendly.
#
#   docker build -t radscore .
#   docker run --read-only --tmpfs /tmp -v radscore-data:/var/lib/radscore -p 8080:8080 radscore
#
# Data (SQLite database and blobs) live in the /var/lib/radscore volume; everything else in
# the image is read-only at run time. For several replicas on PostgreSQL and S3-compatible
# storage see docs/deployment.md.

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-pip unzip \
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
RUN cargo build --release --bin radscore
# The ONNX Runtime shared library, from the pinned PyPI wheel (scripts/setup.sh ort).
RUN scripts/setup.sh ort

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/radscore radscore \
    && mkdir -p /var/lib/radscore && chown radscore /var/lib/radscore
COPY --from=build /src/target/release/radscore /usr/local/bin/radscore
COPY --from=build /src/.ort/lib/libonnxruntime.so /usr/local/lib/radscore/libonnxruntime.so
COPY models /usr/share/radscore/models
ENV ORT_DYLIB_PATH=/usr/local/lib/radscore/libonnxruntime.so \
    RADSCORE_MODEL_DIR=/usr/share/radscore/models/demo \
    DATABASE_URL=sqlite:///var/lib/radscore/radscore.db \
    RADSCORE_BLOB_DIR=/var/lib/radscore/blobs \
    RADSCORE_BIND=0.0.0.0:8080 \
    RADSCORE_LOG_FORMAT=json
USER radscore
VOLUME /var/lib/radscore
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/radscore"]
CMD ["serve"]
