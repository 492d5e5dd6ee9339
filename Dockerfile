# syntax=docker/dockerfile:1
#
# The Portcullis container image: one binary on distroless, running as non-root.
#
#   docker build -t portcullis:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/portcullis:0.1.0 --push .
#
# Each platform is compiled natively (under emulation or on a native builder): ring, the
# only C code in the dependency tree, then needs no cross toolchain.
#
# Why glibc + distroless/cc rather than a static musl binary: the binary links only libc,
# libm and libgcc_s (no OpenSSL: TLS is rustls on ring), which distroless/cc provides;
# musl's allocator is markedly slower under the many-threaded allocation a proxy does,
# and using it well would mean a code change (a different global allocator). The build
# image (Debian 12, glibc 2.36) matches the runtime image (Debian 12), so the binary never
# asks for a newer glibc than it finds. The runtime image also carries the CA bundle
# (/etc/ssl/certs) that rustls-native-certs reads to trust the identity provider; time
# zones are compiled into the binary (jiff's bundled tzdb).
#
# Base images are pinned by tag only. Add digests where the build runs
# (`docker buildx imagetools inspect rust:1.95-bookworm`, and the same for the runtime
# image) and let your update bot bump them: they were not added here because they could
# not be verified where this file was written, and a wrong digest is worse than none.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit), so a code change
# rebuilds only Portcullis itself. The binary is copied out of the cached target dir
# within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin portcullis \
 && install -D -m 0755 target/release/portcullis /out/portcullis

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/portcullis /portcullis
# distroless "nonroot": uid/gid 65532. Numeric, so `runAsNonRoot` can verify it.
USER 65532:65532
# HTTPS, HTTP (redirects to HTTPS), admin (metrics, health, /debug/routes).
EXPOSE 8443 8080 9090
ENTRYPOINT ["/portcullis"]
CMD ["run", "--kubernetes", "--config", "/etc/portcullis/config.yaml"]
