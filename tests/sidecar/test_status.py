"""The status hand-off: versioned documents, atomic writes, tolerant reads, metrics from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlement_sidecar.sidecar import metrics, status
from entitlement_sidecar.sidecar.defaults import STATES


def test_a_document_has_every_field_and_consistent_entitlement() -> None:
    """Every documented field is present; `entitled` follows `state`."""
    doc = status.document("entitled", product_code="p", nonce="i:n")
    assert list(status.FIELDS) == list(doc)
    assert (doc["version"], doc["entitled"]) == (1, True)
    assert status.document("denied")["entitled"] is False


def test_unknown_states_and_fields_are_programming_errors() -> None:
    """A typo in a state or field name fails loudly instead of writing a bad document."""
    with pytest.raises(ValueError, match="state"):
        status.document("ready")
    with pytest.raises(ValueError, match="fields"):
        status.document("pending", colour="blue")


def test_write_then_read_round_trips_with_the_token(tmp_path: Path) -> None:
    """An entitled write leaves status.json and token.jwt that read back unchanged."""
    doc = status.document("entitled", nonce="i:n")
    status.write(str(tmp_path), doc, "a.b.c")
    assert doc == status.read(str(tmp_path))
    assert status.read_token(str(tmp_path)) == "a.b.c"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_non_entitled_write_removes_a_stale_token(tmp_path: Path) -> None:
    """When the state is not entitled, an old token.jwt does not linger."""
    status.write(str(tmp_path), status.document("entitled"), "a.b.c")
    status.write(str(tmp_path), status.document("denied", reason="CustomerNotEntitledException"))
    assert status.read_token(str(tmp_path)) is None


def test_create_if_absent_never_overwrites(tmp_path: Path) -> None:
    """The parent's pending document cannot replace the child's final one."""
    status.write(str(tmp_path), status.document("entitled"), "a.b.c")
    assert not status.create_if_absent(str(tmp_path), status.document("pending"))
    assert (status.read(str(tmp_path)) or {})["state"] == "entitled"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert status.create_if_absent(str(fresh), status.document("pending"))
    assert (status.read(str(fresh)) or {})["state"] == "pending"
    assert [p.name for p in fresh.iterdir()] == ["status.json"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b'{"version": 2, "state": "entitled"}',
        b'{"version": 1, "state": "x"}',
        b"\xff\xfe",
        b"[" * 100000,
    ],
    ids=["empty", "truncated", "array", "other-version", "unknown-state", "binary", "deep"],
)
def test_malformed_documents_read_as_none(tmp_path: Path, content: bytes) -> None:
    """Readers treat anything malformed as "no status", never raising."""
    (tmp_path / "status.json").write_bytes(content)
    assert status.read(str(tmp_path)) is None


def test_a_fifo_or_directory_in_place_of_the_files_reads_as_none(tmp_path: Path) -> None:
    """A FIFO (which would block an open) or a directory planted as status/token reads as None."""
    os.mkfifo(tmp_path / "status.json")
    (tmp_path / "token.jwt").mkdir()
    assert (status.read(str(tmp_path)), status.read_token(str(tmp_path))) == (None, None)


def test_a_missing_directory_reads_as_none(tmp_path: Path) -> None:
    """No directory at all is no status."""
    assert status.read(str(tmp_path / "nope")) is None
    assert status.read_token(str(tmp_path / "nope")) is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300))
def test_random_bytes_never_raise(tmp_path: Path, content: bytes) -> None:
    """Random bytes in status.json read as None or as a document of a known state."""
    (tmp_path / "status.json").write_bytes(content)
    doc = status.read(str(tmp_path))
    assert doc is None or doc["state"] in STATES


def test_metrics_expose_state_reason_attempts_and_rotation() -> None:
    """The Prometheus body carries state, reason, attempts by result, latency and rotation."""
    doc = status.document(
        "entitled",
        attempts=3,
        attempt_results={"ThrottlingException": 2, "Success": 1},
        latency_seconds_sum=0.25,
        public_key_rotation_at="2026-01-01T00:00:00+00:00",
        product_code="prod-paid",
    )
    body = metrics.render(doc, ready=True)
    for line in [
        "entitlement_sidecar_ready 1",
        'entitlement_sidecar_state{state="entitled"} 1',
        'entitlement_sidecar_state{state="denied"} 0',
        'entitlement_sidecar_register_attempts_total{result="ThrottlingException"} 2',
        "entitlement_sidecar_register_latency_seconds_count 3",
        "entitlement_sidecar_register_latency_seconds_sum 0.25",
        "entitlement_sidecar_public_key_rotation_seen 1",
        "entitlement_sidecar_public_key_rotation_timestamp_seconds 1767225600",
    ]:
        assert line in body.splitlines()


def test_metrics_survive_a_missing_or_hostile_document() -> None:
    """No document, label values with quotes and newlines, or huge numbers: valid lines."""
    assert "entitlement_sidecar_ready 0" in metrics.render(None, ready=False)
    doc = status.document("denied", reason='bad"\nreason\\')
    body = metrics.render(doc, ready=False)
    assert 'reason="bad\\"\\nreason\\\\"' in body
    for line in body.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ", "entitlement_sidecar_"))
    huge = {**doc, "attempts": 10**400, "attempt_results": {"x": 10**400}}
    assert "entitlement_sidecar_register_latency_seconds_count inf" in metrics.render(
        huge, ready=False
    )


def test_a_written_document_is_pretty_json(tmp_path: Path) -> None:
    """status.json is plain JSON a human can read (and `jq` can parse)."""
    status.write(str(tmp_path), status.document("pending"))
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "pending"
