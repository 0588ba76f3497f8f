"""`entitlement-sidecar operator report` over a ledger written by the real operator (kmock)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.operator import report
from entitlement_sidecar.operator.annotations import DIMENSIONS_KEY, WorkloadRef
from tests.operator.harness import LEDGER_NS, FakeClock, Kube, kube_server, runtime

BIG = 2600  # workloads in the 12:00 hour: more allocations than fit one object


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ledger of three hours (10:00 sent; 11:00 users sent, gb Failed; 12:00 with 2,600
    workloads, its allocations in parts), written once for the module, and a kubeconfig."""
    clock = FakeClock()
    with kube_server() as kube, Emulator(now=clock) as emu:
        yield write_ledger(kube, emu, clock, tmp_path_factory.mktemp("report"))


def write_ledger(kube: Kube, emu: Emulator, clock: FakeClock, tmp_path: Path) -> str:
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "faults": [
                {"op": "MeterUsage", "kind": "error", "code": "InvalidTagException", "count": 1}
            ],
        }
    )
    rt = runtime(kube, emu, clock, "AKIDPOD1")
    web = WorkloadRef("shop", "Deployment", "web")
    rt.engine.observe(web, {DIMENSIONS_KEY: '{"users": 2, "gb": 1}'}, {}, gone=False)
    rt.engine.tick()
    clock.advance(hours=1, minutes=4)
    emu.set_scenario({"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None})
    rt.engine.tick()  # 11:04: 10:00 sent
    for i in range(BIG):
        ref = WorkloadRef("shop", "Deployment", f"worker-{i:05d}-" + "x" * 100)
        rt.engine.observe(ref, {DIMENSIONS_KEY: '{"users": 1}'}, {}, gone=False)
    emu.set_scenario(
        {
            "products": {"prod-paid": {"dimensions": ["users", "gb"]}},
            "throttle": None,
            "faults": [
                {"op": "MeterUsage", "kind": "error", "code": "InvalidTagException", "count": 1}
            ],
        }
    )
    clock.advance(hours=1)
    rt.engine.tick()  # 12:04: 11:00 closed and sent: gb first, refused
    emu.set_scenario({"products": {"prod-paid": {"dimensions": ["users", "gb"]}}, "throttle": None})
    clock.advance(hours=1)
    rt.engine.tick()  # 13:04: 12:00 sent
    return str(kube.kubeconfig(tmp_path / "kubeconfig"))


def run(kubeconfig: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = report.main(["--namespace", LEDGER_NS, "--kubeconfig", kubeconfig, *args])
    return code, capsys.readouterr().out


def test_json_has_every_hour_with_its_record_caller_and_allocations(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """JSON lists each hour and dimension with quantity, phase, record id, caller, attempts and
    every allocation (from the parts of the large hour); a Failed hour makes the exit code 1."""
    code, out = run(kubeconfig, capsys, "--format", "json")
    hours = json.loads(out)
    summary = [(h["hour"][11:13], h["dimension"], h["phase"]) for h in hours]
    assert summary == [
        ("10", "gb", "Sent"),
        ("10", "users", "Sent"),
        ("11", "gb", "Failed"),
        ("11", "users", "Sent"),
        ("12", "gb", "Sent"),
        ("12", "users", "Sent"),
        ("13", "gb", "Accumulating"),
        ("13", "users", "Accumulating"),
    ]
    assert code == report.EXIT_ATTENTION
    big = hours[5]
    assert (len(big["allocations"]), big["quantity"], big["caller"]) == (
        2500,
        str(BIG + 2),
        "operator-AKIDPOD1",
    )
    assert {h["meteringRecordId"] != "" for h in hours if h["phase"] == "Sent"} == {True}
    assert hours[2]["errorCode"] == "InvalidTagException"


def test_filters_choose_hours_and_the_exit_code_follows_them(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Time range, dimension and phase filters; without a problem hour in range the exit is 0."""
    code, out = run(
        kubeconfig,
        capsys,
        "--format",
        "json",
        "--since",
        "2026-11-28T11:00:00Z",
        "--until",
        "2026-11-28T13:00:00Z",
        "--dimension",
        "users",
    )
    assert (code, [(h["hour"][11:13], h["dimension"]) for h in json.loads(out)]) == (
        0,
        [("11", "users"), ("12", "users")],
    )
    code, out = run(kubeconfig, capsys, "--format", "json", "--phase", "Failed")
    assert (code, len(json.loads(out))) == (report.EXIT_ATTENTION, 1)


def test_csv_has_one_row_per_allocation(
    kubeconfig: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """CSV repeats the hour's fields on one row per allocation (one row for an hour without)."""
    _, out = run(kubeconfig, capsys, "--format", "csv", "--since", "2026-11-28T12:00:00Z")
    rows = list(csv.DictReader(io.StringIO(out)))
    users = [r for r in rows if r["dimension"] == "users" and r["hour"].startswith("2026-11-28T12")]
    assert len(users) == 2500
    assert sum(float(r["allocationQuantity"]) for r in users) == BIG + 2
    assert "namespace=shop;workload=Deployment/" in users[0]["allocationTags"]
    assert [r["allocationQuantity"] for r in rows if r["phase"] == "Accumulating"] == ["", ""]


def test_table_is_for_people(kubeconfig: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The default table: a header and one aligned line per hour, problems in the note."""
    code, out = run(kubeconfig, capsys)
    lines = out.splitlines()
    assert lines[0].split() == [
        "HOUR",
        "DIMENSION",
        "QUANTITY",
        "PHASE",
        "METERINGRECORDID",
        "CALLER",
        "ATTEMPTS",
        "ALLOCATIONS",
        "NOTE",
    ]
    assert len(lines) == 9
    assert "InvalidTagException" in lines[3]
    assert code == report.EXIT_ATTENTION


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "'yesterday' is not a time"),
        (["--namespace", ""], "--namespace (the ledger namespace) is required"),
        (["--namespace", "metering", "--kubeconfig", "/nonexistent"], "cannot read the ledger"),
    ],
    ids=["bad-time", "no-namespace", "no-kubeconfig"],
)
def test_bad_usage_is_one_line_and_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad argument or an unreachable ledger: one line on stderr, exit 2."""
    for name in ("ENTITLEMENT_OPERATOR_LEDGER_NAMESPACE", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    assert report.main(args) == report.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_the_command_line_runs_it(kubeconfig: str) -> None:
    """`entitlement-sidecar operator report` is the same program from the command line."""
    env: dict[str, Any] = {"PATH": os.environ["PATH"], "HOME": "/nonexistent"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "entitlement_sidecar",
            "operator",
            "report",
            "--namespace",
            LEDGER_NS,
            "--kubeconfig",
            kubeconfig,
            "--phase",
            "Sent",
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("hour,dimension,quantity,phase,meteringRecordId,caller")
