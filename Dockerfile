# The bridge as a container image: one static binary FROM scratch, built
# outside the image by `make image` (CGO_ENABLED=0 go build -> bin/bridge), so
# the build needs no base image, no registry and no BuildKit.
#
# It runs on the host network to broadcast on the LAN:
#   docker run --network host --read-only --cap-drop ALL udp-discovery-bridge run --whitelist eth0 ...
# No shell, no CA files (the binary embeds fallback roots), no user database:
# the numeric user 65532 ("nonroot" in distroless) needs none.
FROM scratch

ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/udp-discovery-bridge/bridge
ARG LICENSES=NOASSERTION
LABEL org.opencontainers.image.title="udp-discovery-bridge" \
      org.opencontainers.image.description="Finds django-udp-discovery servers by UDP broadcast and registers them in Consul" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="${LICENSES}"

# The build output is 0755; COPY keeps the mode (the legacy builder has no --chmod).
COPY bin/bridge /bridge

USER 65532:65532
EXPOSE 9108
# /healthz: 200 while the discovery loop ticks. Set DISCOVERY_CLIENT_METRICS_ADDR
# (not --metrics-addr) to move it, so this check follows.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/bridge", "healthcheck"]
ENTRYPOINT ["/bridge"]
CMD ["run"]
