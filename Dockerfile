# syntax=docker/dockerfile:1
# A static (musl) seqtail on a distroless base, running as a non-root user.
FROM rust:1.85-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin seqtail

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/seqtail /usr/local/bin/seqtail
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/seqtail"]
CMD ["--help"]
