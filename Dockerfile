# entitlement-sidecar image: the sidecar (default) and, with the operator extra, the metering
# operator. Two stages: build a virtualenv, then copy only the virtualenv onto a clean base.
#
#   docker build -t entitlement-sidecar:0.1.0 .                                # sidecar
#   docker build --build-arg EXTRAS=operator -t entitlement-sidecar:0.1.0 .    # sidecar + operator
#   docker build --target operator -t entitlement-sidecar-operator:0.1.0 .     # operator only
#   docker build --target emulator -t entitlement-sidecar-emulator:0.1.0 .     # Metering emulator
#
# Runs as 65532:65532 with a read-only root filesystem: the only writable path it needs is the
# status directory (a volume), which is also TMPDIR. Sellers build FROM this image, COPY their
# public key ring into /etc/entitlement-sidecar/keys and bake the release image policy with it
# (see examples/seller-image/Dockerfile); `--build-arg POLICY=permissive` is for tests only.

ARG BASE=python:3.12-slim

FROM ${BASE} AS source
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY entitlement_sidecar ./entitlement_sidecar

# Byte-code is compiled here, at build time, so the read-only runtime never needs to write it;
# pip itself is removed from the virtualenv that ships. The command runs Python isolated (-I:
# PYTHONPATH, PYTHONHOME and friends from a pod spec cannot load other code) and the image policy
# is baked into the virtualenv: release (verification on, the key ring pinned: none yet, the
# seller's image bakes its own) unless a test build asks for POLICY=permissive.
FROM source AS build
ARG EXTRAS=""
ARG POLICY=release
RUN python3 -m venv /opt/entitlement-sidecar \
    && spec="." && if [ -n "${EXTRAS}" ]; then spec=".[${EXTRAS}]"; fi \
    && /opt/entitlement-sidecar/bin/pip install --no-cache-dir --compile "${spec}" \
    && /opt/entitlement-sidecar/bin/pip uninstall --yes pip \
    && printf '%s\n' '#!/opt/entitlement-sidecar/bin/python -IB' 'import sys' \
       'from entitlement_sidecar.cli import main' 'sys.exit(main())' \
       > /opt/entitlement-sidecar/bin/entitlement-sidecar \
    && mkdir -p /etc/entitlement-sidecar/keys \
    && /opt/entitlement-sidecar/bin/entitlement-sidecar policy bake --profile "${POLICY}"

FROM source AS build-operator
RUN python3 -m venv /opt/entitlement-sidecar \
    && /opt/entitlement-sidecar/bin/pip install --no-cache-dir --compile ".[operator]" \
    && /opt/entitlement-sidecar/bin/pip uninstall --yes pip \
    && /opt/entitlement-sidecar/bin/python -c "import kopf, entitlement_sidecar.cli"

FROM ${BASE} AS runtime
ARG BASE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="entitlement-sidecar" \
      org.opencontainers.image.description="AWS Marketplace entitlement sidecar (RegisterUsage) and hourly MeterUsage operator for EKS and ECS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE}"
ENV PATH=/opt/entitlement-sidecar/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TMPDIR=/var/run/entitlement \
    HOME=/var/run/entitlement
# A named non-root user for `ps`; the image is run by its numeric id below.
RUN groupadd --system --gid 65532 entitlement \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /var/run/entitlement \
       --shell /usr/sbin/nologin entitlement \
    && mkdir -p /var/run/entitlement /etc/entitlement-sidecar/keys \
    && chown 65532:65532 /var/run/entitlement \
    && chmod 0755 /var/run/entitlement /etc/entitlement-sidecar/keys
# ECS copies a VOLUME's image content (and ownership) into a task volume mounted at the same path,
# which makes the status directory writable for 65532 there; `docker run --read-only` gets an
# anonymous volume.
VOLUME ["/var/run/entitlement"]
EXPOSE 9841
USER 65532:65532
ENTRYPOINT ["entitlement-sidecar"]

FROM runtime AS operator
COPY --from=build-operator /opt/entitlement-sidecar /opt/entitlement-sidecar
EXPOSE 9842
HEALTHCHECK NONE
CMD ["operator"]

# The local Metering emulator alone, for sellers' CI (any language): plain HTTP on 9850, public keys
# in /var/run/entitlement/keys and at GET /_emulator/keys/<version>.pem. A test tool, never a
# production service: its /_emulator routes have no authentication.
FROM runtime AS emulator
COPY --from=build /opt/entitlement-sidecar /opt/entitlement-sidecar
EXPOSE 9850
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9850/_emulator/health', timeout=2)"]
CMD ["emulator", "--host", "0.0.0.0", "--port", "9850", "--public-key-dir", "/var/run/entitlement/keys"]

FROM runtime AS sidecar
COPY --from=build /opt/entitlement-sidecar /opt/entitlement-sidecar
HEALTHCHECK --interval=15s --timeout=5s --start-period=1860s --retries=3 \
    CMD ["entitlement-sidecar", "check"]
CMD ["run"]
