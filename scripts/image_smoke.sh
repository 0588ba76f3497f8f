#!/usr/bin/env bash
# Smoke build of the Dockerfile on a machine without Docker or a reachable image registry
# (`make image-smoke`; not part of `make test`). It proves that the Dockerfile builds, that the
# image runs as 65532, and that its entrypoint, cmd and health check work; it is NOT the release
# image (the base is a debootstrapped Debian with python3 instead of python:3.12-slim, and pip
# installs from a local wheelhouse baked into that base).
#
# Needs root and `apt-get install buildah debootstrap`; 3-4 minutes here. DEBIAN_MIRROR overrides
# the mirror (default: the first one in this machine's apt sources). WITH_OPERATOR=1 also builds
# and runs the operator target; WITH_EMULATOR=1 the emulator target (its command as 65532, called
# from the host: health check, key download, a RegisterUsage token verified with that key).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in buildah debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    echo "image-smoke: $tool not found (apt-get install buildah debootstrap)" >&2
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "image-smoke: needs root (debootstrap, buildah chroot isolation)" >&2
  exit 1
fi

PY=${PYTHON:-.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
if [ -z "$MIRROR" ]; then
  MIRROR=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
fi
WORK=$(mktemp -d /tmp/image-smoke.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
B=(buildah --storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run")
BASE=localhost/entitlement-smoke-base:bookworm
IMAGE=localhost/entitlement-sidecar:smoke

echo "== 1. debootstrap a bookworm base with python3"
debootstrap --variant=minbase --include=python3,python3-venv,passwd bookworm "$WORK/rootfs" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }

echo "== 2. offline wheelhouse for pip inside the build"
spec="."
if [ "${WITH_OPERATOR:-0}" = 1 ]; then spec=".[operator]"; fi
"$PY" -m pip wheel --quiet --wheel-dir "$WORK/rootfs/wheels" "$spec" hatchling >"$WORK/wheel.log" 2>&1 \
  || { tail -20 "$WORK/wheel.log" >&2; exit 1; }
printf '[global]\nno-index = true\nfind-links = /wheels\n' >"$WORK/rootfs/etc/pip.conf"

echo "== 3. import the rootfs as the local base image"
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
ctr=$("${B[@]}" from scratch)
"${B[@]}" add "$ctr" "$WORK/rootfs.tar" / >/dev/null
"${B[@]}" commit --quiet "$ctr" "$BASE" >/dev/null
"${B[@]}" rm "$ctr" >/dev/null

echo "== 4. build the Dockerfile (target sidecar, permissive image policy: keys come at run time) on it"
start=$(date +%s)
"${B[@]}" bud --format docker --pull=never --isolation chroot --layers=false --build-arg "BASE=$BASE" \
  --build-arg POLICY=permissive --target sidecar -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

echo "== 5. inspect and run it"
"${B[@]}" inspect --type image --format \
  'user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}} cmd={{.OCIv1.Config.Cmd}}{{println}}' "$IMAGE"
"${B[@]}" inspect --type image --format 'healthcheck={{.Docker.Config.Healthcheck.Test}}{{println}}' "$IMAGE"
ctr=$("${B[@]}" from --pull-never "$IMAGE")
run=("${B[@]}" run --isolation chroot --user 65532:65532 "$ctr" --)
echo "id: $("${run[@]}" id -u):$("${run[@]}" id -g)"
echo "version: $("${run[@]}" entitlement-sidecar --version)"
echo "launcher: $("${run[@]}" head -1 /opt/entitlement-sidecar/bin/entitlement-sidecar)"
echo "policy: $("${run[@]}" entitlement-sidecar policy show | tr -d ' \n')"
set +e
"${run[@]}" entitlement-sidecar check
echo "check (no status yet) exit code: $? (expected 1: not entitled)"
"${run[@]}" sh -c 'touch /opt/entitlement-sidecar/x' 2>/dev/null
echo "write into the venv as 65532 exit code: $? (expected non-zero)"
set -e

echo "== 6. register as 65532 against the emulator on loopback, then check --verify"
mkdir -p "$WORK/keys" "$WORK/status"
chown 65532:65532 "$WORK/status"
"$PY" -m entitlement_sidecar emulator --port 0 --public-key-dir "$WORK/keys" >"$WORK/emulator.out" 2>&1 &
emulator_pid=$!
trap 'kill "$emulator_pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q '^listening on' "$WORK/emulator.out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$WORK/emulator.out")
envs=(--env ENTITLEMENT_PRODUCT_CODE=prod-paid --env ENTITLEMENT_INSTANCE_ID=smoke-instance
      --env "AWS_ENDPOINT_URL_MARKETPLACE_METERING=$url" --env AWS_REGION=us-east-1
      --env AWS_ACCESS_KEY_ID=AKIDSMOKE --env AWS_SECRET_ACCESS_KEY=smoke
      --env AWS_EC2_METADATA_DISABLED=true --env ENTITLEMENT_LOG_FORMAT=text)
mounts=(-v "$WORK/keys:/etc/entitlement-sidecar/keys:ro" -v "$WORK/status:/var/run/entitlement")
run=("${B[@]}" run --isolation chroot --user 65532:65532 "${envs[@]}" "${mounts[@]}" "$ctr" --)
"${run[@]}" entitlement-sidecar register
echo "register: exit code 0 (entitled)"
"${run[@]}" entitlement-sidecar check --verify
echo "check --verify: exit code 0 (entitled)"
"${B[@]}" rm "$ctr" >/dev/null

echo "== 7. a seller image (examples/seller-image) FROM it: the emulator's key baked in, release policy"
SELLER_IMAGE=localhost/entitlement-seller:smoke
mkdir -p "$WORK/seller/keys" "$WORK/seller-status" "$WORK/other-keys" "$WORK/hijack"
cp "$WORK/keys/1.pem" "$WORK/seller/keys/1.pem"
cp examples/seller-image/Dockerfile "$WORK/seller/Dockerfile"
"${B[@]}" bud --format docker --pull=never --isolation chroot --layers=false \
  --build-arg "BASE=$IMAGE" --build-arg TRUSTED_PRODUCT_CODES=prod-paid -t "$SELLER_IMAGE" \
  "$WORK/seller" >"$WORK/build-seller.log" 2>&1 || { tail -30 "$WORK/build-seller.log" >&2; exit 1; }
"$PY" - "$WORK/other-keys/1.pem" <<'PY'
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
open(sys.argv[1], "wb").write(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
PY
printf 'open("/var/run/entitlement/hijacked", "w").close()\n' >"$WORK/hijack/sitecustomize.py"
chown 65532:65532 "$WORK/seller-status"
ctr=$("${B[@]}" from --pull-never "$SELLER_IMAGE")
seller=("${B[@]}" run --isolation chroot --user 65532:65532 "${envs[@]}"
        -v "$WORK/seller-status:/var/run/entitlement" -v "$WORK/hijack:/hijack:ro")
"${seller[@]}" --env PYTHONPATH=/hijack "$ctr" -- entitlement-sidecar register
test ! -e "$WORK/seller-status/hijacked" || { echo "PYTHONPATH loaded code into the sidecar" >&2; exit 1; }
echo "register with the baked, pinned key (PYTHONPATH=/hijack ignored): exit code 0 (entitled)"
"${seller[@]}" "$ctr" -- entitlement-sidecar check --verify
# expect_exit CODE WHAT COMMAND...: run it, fail the smoke unless it exits with CODE.
expect_exit() {
  local want=$1 what=$2 rc=0; shift 2
  "$@" || rc=$?
  echo "$what: exit code $rc (expected $want)"
  [ "$rc" -eq "$want" ] || exit 1
}
expect_exit 2 "register with ENTITLEMENT_VERIFY_SIGNATURE=false" \
  "${seller[@]}" --env ENTITLEMENT_VERIFY_SIGNATURE=false "$ctr" -- entitlement-sidecar register
expect_exit 2 "check --verify with another key ring mounted over the image's" \
  "${seller[@]}" -v "$WORK/other-keys:/etc/entitlement-sidecar/keys:ro" "$ctr" -- \
  entitlement-sidecar check --verify
"${B[@]}" rm "$ctr" >/dev/null

# build_target TARGET IMAGE: build one more Dockerfile target on the local base and show its config.
build_target() {
  local start; start=$(date +%s)
  "${B[@]}" bud --format docker --pull=never --isolation chroot --layers=false \
    --build-arg "BASE=$BASE" --target "$1" -t "$2" . >"$WORK/build-$1.log" 2>&1 \
    || { tail -30 "$WORK/build-$1.log" >&2; exit 1; }
  echo "built $1 in $(( $(date +%s) - start )) s"
  "${B[@]}" inspect --type image --format \
    'user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}} cmd={{.OCIv1.Config.Cmd}}{{println}}' "$2"
  "${B[@]}" inspect --type image --format 'healthcheck={{.Docker.Config.Healthcheck.Test}}{{println}}' "$2"
}

if [ "${WITH_OPERATOR:-0}" = 1 ]; then
  echo "== 8. build the operator target and run it as 65532"
  OPERATOR_IMAGE=localhost/entitlement-sidecar-operator:smoke
  build_target operator "$OPERATOR_IMAGE"
  ctr=$("${B[@]}" from --pull-never "$OPERATOR_IMAGE")
  "${B[@]}" run --isolation chroot --user 65532:65532 "$ctr" -- \
    python3 -c "import kopf, kubernetes, entitlement_sidecar.operator.cli; print('operator imports: ok')"
  "${B[@]}" run --isolation chroot --user 65532:65532 "$ctr" -- entitlement-sidecar operator --help | head -1
  "${B[@]}" rm "$ctr" >/dev/null
fi
if [ "${WITH_EMULATOR:-0}" = 1 ]; then
  echo "== 9. build the emulator target, run its command as 65532, call it from the host"
  EMULATOR_IMAGE=localhost/entitlement-sidecar-emulator:smoke
  build_target emulator "$EMULATOR_IMAGE"
  ctr=$("${B[@]}" from --pull-never "$EMULATOR_IMAGE")
  mkdir -p "$WORK/emulator-state" && chown 65532:65532 "$WORK/emulator-state"
  # chroot isolation shares the host's network: the image's own command line, port 9850.
  "${B[@]}" run --isolation chroot --user 65532:65532 -v "$WORK/emulator-state:/var/run/entitlement" \
    "$ctr" -- entitlement-sidecar emulator --host 0.0.0.0 --port 9850 \
    --public-key-dir /var/run/entitlement/keys >"$WORK/emulator-image.out" 2>&1 &
  image_pid=$!
  trap 'kill "$image_pid" "$emulator_pid" 2>/dev/null || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 100); do grep -q '^listening on' "$WORK/emulator-image.out" && break; sleep 0.1; done
  head -1 "$WORK/emulator-image.out"
  "${B[@]}" run --isolation chroot --user 65532:65532 "$ctr" -- python3 -c \
    "import urllib.request as u; u.urlopen('http://127.0.0.1:9850/_emulator/health', timeout=2)"
  echo "health check command: exit code 0"
  "$PY" - <<'PY'
import base64, json, urllib.request
import boto3
from botocore.config import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
url = "http://127.0.0.1:9850"
pem = urllib.request.urlopen(url + "/_emulator/keys/1.pem", timeout=5).read()
client = boto3.client("meteringmarketplace", region_name="us-east-1", endpoint_url=url,
                      aws_access_key_id="AKIDSMOKE", aws_secret_access_key="smoke",
                      config=Config(retries={"total_max_attempts": 1}))
token = client.register_usage(ProductCode="prod-paid", PublicKeyVersion=1, Nonce="smoke")["Signature"]
head, body, sig = token.split(".")
key = serialization.load_pem_public_key(pem)
key.verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), f"{head}.{body}".encode(),
           padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
records = json.load(urllib.request.urlopen(url + "/_emulator/records", timeout=5))
print("emulator image: RegisterUsage token verified with /_emulator/keys/1.pem;",
      len(records["registrations"]), "registration recorded")
PY
  kill "$image_pid" 2>/dev/null || true
  wait "$image_pid" 2>/dev/null || true
  "${B[@]}" rm "$ctr" >/dev/null
fi
echo "image-smoke: OK"
