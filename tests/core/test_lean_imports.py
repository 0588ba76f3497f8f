"""The lean processes import only what they must: the promise of docs/design.md, as a test.

`run` stays alive in every pod and `check` is an exec probe started every few seconds, so every
module they load is paid for in memory and start time many times over. Each entry point runs in a
fresh interpreter (`python -I`) with an import tracer installed first; afterwards the test reads
`sys.modules` and, for any forbidden module, names the chain of importers that pulled it in.
"""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.sidecar.usage.client import request
from entitlement_sidecar.testing import clean_env, free_port, http_get

# Never in a lean process: each costs megabytes or tens of milliseconds per start.
HEAVY = (
    "boto3",
    "botocore",
    "pydantic",
    "pydantic_settings",
    "cryptography",
    "yaml",
    "http.server",
    "asyncio",
)
# Also never in the exec probe's path (`cli` dispatch and `check`): most of its import time.
PROBE_ONLY = ("typing", "collections.abc", "logging")

# Runs in the fresh interpreter: record who imports what, run one entry point, dump the modules.
# It may import nothing itself (no json): the dump is a Python literal read back with `ast`.
DRIVER = r"""
import sys
_who = {}
class _Tracer:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in _who:
            frame = sys._getframe(1)
            while frame is not None and frame.f_globals.get("__name__", "").startswith(
                ("importlib", "_frozen_importlib")
            ):
                frame = frame.f_back
            _who[name] = frame.f_globals.get("__name__", "?") if frame is not None else "?"
        return None
sys.meta_path.insert(0, _Tracer)
out, module, *args = sys.argv[1:]
try:
    entry = __import__(module, fromlist=["main"]).main
    code = entry(args)
finally:
    with open(out, "w") as handle:
        handle.write(repr({name: _who.get(name, "<interpreter start>") for name in sys.modules}))
sys.exit(code)
"""


def culprit(modules: Mapping[str, str], name: str) -> str:
    """`name <- importer <- ...` up to the first module of ours (the one to fix)."""
    chain = [name]
    seen = {name}
    current = name
    while not current.startswith("entitlement_sidecar"):
        importer = modules.get(current, "?")
        if importer in seen or importer in {"?", "<interpreter start>"}:
            chain.append(importer)
            break
        chain.append(importer)
        seen.add(importer)
        current = importer
    return " <- ".join(chain)


def forbidden(modules: Mapping[str, str], names: tuple[str, ...]) -> list[str]:
    """One line per forbidden module present, naming who pulled it in."""
    return [culprit(modules, name) for name in names if name in modules]


def assert_lean(modules: Mapping[str, str], names: tuple[str, ...]) -> None:
    """Fail with one line per forbidden module and the importers that pulled it in."""
    found = forbidden(modules, names)
    assert not found, "forbidden imports:\n  " + "\n  ".join(found)


def run_entry(
    tmp_path: Path, module: str, *args: str, env: Mapping[str, str]
) -> tuple[int, dict[str, str]]:
    """Run `module.main(args)` in a fresh `python -I`; (exit code, {module: importer})."""
    out = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-I", "-c", DRIVER, str(out), module, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, ast.literal_eval(out.read_text())


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An environment whose status directory holds a real registration of pod `lean-pod`."""
    status_dir = tmp_path_factory.mktemp("status")
    with Emulator() as emu:
        env = clean_env(
            **emu.env(access_key_id="AKIDLEAN"),
            ENTITLEMENT_PRODUCT_CODE="prod-paid",
            ENTITLEMENT_PUBLIC_KEYS=str(emu.public_key_dir),
            ENTITLEMENT_STATUS_DIR=str(status_dir),
            POD_UID="lean-pod",
        )
        done = subprocess.run(
            [sys.executable, "-m", "entitlement_sidecar", "register"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        yield env


CLI = "entitlement_sidecar.cli"
CHECK = "entitlement_sidecar.sidecar.commands.check"


@pytest.mark.parametrize(
    "args",
    [("--help",), ("--version",), ("no-such-command",), ("check", "--help")],
    ids=["help", "version", "unknown-command", "check-help"],
)
def test_cli_dispatch_imports_nothing_heavy(tmp_path: Path, args: tuple[str, ...]) -> None:
    """The dispatcher loads neither a heavy library nor typing/collections.abc/logging."""
    _code, modules = run_entry(tmp_path, CLI, *args, env=clean_env())
    assert_lean(modules, HEAVY + PROBE_ONLY)


@pytest.mark.parametrize(
    ("args", "expected_code"),
    [((), 0), (("--verify",), 0)],
    ids=["check", "check-verify"],
)
def test_check_of_an_entitled_pod_stays_lean(
    tmp_path: Path, registered: dict[str, str], args: tuple[str, ...], expected_code: int
) -> None:
    """`check` and `check --verify` pass on a real registration without any heavy import."""
    code, modules = run_entry(tmp_path, CLI, "check", *args, env=registered)
    assert code == expected_code
    assert_lean(modules, HEAVY + PROBE_ONLY)


@pytest.mark.parametrize("args", [(), ("--verify",)], ids=["check", "check-verify"])
def test_check_that_fails_stays_lean(
    tmp_path: Path, registered: dict[str, str], args: tuple[str, ...]
) -> None:
    """A failing `check` (token of another pod) takes the same lean path to its exit 1."""
    env = {**registered, "POD_UID": "another-pod"}
    code, modules = run_entry(tmp_path, CHECK, *args, env=env)
    assert code == 1
    assert_lean(modules, HEAVY + PROBE_ONLY)


@pytest.mark.parametrize("usage", [False, True], ids=["probes", "with-usage-intake"])
def test_the_run_parent_and_its_probe_server_stay_lean(
    tmp_path: Path, registered: dict[str, str], usage: bool
) -> None:
    """`run` serves every endpoint (the usage intake too), gets ready, sends the partial hour
    at SIGTERM and stops without loading a heavy library."""
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    port, usage_port = free_port(), free_port()
    env = {**registered, "ENTITLEMENT_STATUS_DIR": str(status_dir), "ENTITLEMENT_PORT": str(port)}
    if usage:
        env.update(ENTITLEMENT_USAGE_DIMENSIONS="gb", ENTITLEMENT_USAGE_PORT=str(usage_port))
    out = tmp_path / "modules.txt"
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", DRIVER, str(out), CLI, "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while http_get(url + "/readyz", timeout=2, quiet=True)[0] != 200:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "run never became ready"
            time.sleep(0.05)
        for path in ("/livez", "/status", "/metrics", "/nope"):
            assert http_get(url + path, timeout=2)[0] in {200, 404}
        if usage:
            event = json.dumps({"dimension": "gb", "quantity": "1.5", "time": time.time()})
            assert request("POST", "/v1/usage", event.encode(), port=usage_port).status == 202
            assert request("GET", "/v1/usage", port=usage_port).status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    modules = ast.literal_eval(out.read_text())
    assert "entitlement_sidecar.sidecar.probes" in modules
    assert ("entitlement_sidecar.sidecar.usage.service" in modules) is usage
    assert_lean(modules, HEAVY)


def test_the_tracer_names_the_module_of_ours_that_pulled_a_library_in(tmp_path: Path) -> None:
    """The report is not vacuous: botocore is traced back to the Metering wrapper importing it."""
    module = "entitlement_sidecar.aws.metering"
    code, modules = run_entry(tmp_path, module, env=clean_env())
    assert code != 0  # it has no main(): the driver fails after the import, and still reports
    assert culprit(modules, "botocore.session") == f"botocore.session <- {module}"
    assert forbidden(modules, ("botocore.session", "typing"))[0] == (
        f"botocore.session <- {module}"
    )
