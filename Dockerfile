# bulkexport in a container: built from source in Rust's image, run from a
# distroless image (no shell) as a non-root user. Configured by BULKEXPORT_*
# environment variables only (docs/operations.md lists them); its state lives
# in the /data volume. Not built or run by this project's tests: the machine
# it is developed on has no container tools.
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin bulkexport && mkdir -p /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/bulkexport /usr/local/bin/bulkexport
COPY --from=build --chown=nonroot:nonroot /data /data
ENV BULKEXPORT_LISTEN=0.0.0.0:8080 \
    BULKEXPORT_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s \
    CMD ["/usr/local/bin/bulkexport", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/bulkexport"]
CMD ["serve"]
