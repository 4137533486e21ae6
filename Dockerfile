# Build: docker build -t hookgate .
# Run:   docker run -p 8080:8080 -v hookgate-data:/data hookgate
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/hookgate /usr/local/bin/hookgate

FROM debian:bookworm-slim
# libssl3: the bundled libpq uses the system OpenSSL for TLS to PostgreSQL.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data hookgate \
    && mkdir -p /data && chown hookgate /data
COPY --from=build /usr/local/bin/hookgate /usr/local/bin/hookgate
USER hookgate
WORKDIR /data
ENV HOOKGATE_LISTEN=0.0.0.0:8080 \
    HOOKGATE_DATABASE_URL=/data/hookgate.db \
    HOOKGATE_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/health/ready || exit 1
ENTRYPOINT ["hookgate"]
CMD ["serve"]
