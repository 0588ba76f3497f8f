"""`entitlement-sidecar operator report`: the seller's billing record, read from the ledger.

AWS gives the seller no near-real-time copy of container MeterUsage records (the buyer's role
makes them; seller reports arrive about a day later), so the ledger is that record. This command
reads it through the Kubernetes API (in-cluster credentials, or the user's kubeconfig) and prints
each hour: dimension, quantity, phase, MeteringRecordId, the AWS caller (the operator instance
that sent it), attempts, and its per-workload allocations (from the allocation parts of a large
hour). Filters: time range, dimension, phase. Formats: `table` (people), `csv` (one row per
allocation), `json`. Exit codes: 0 every hour in the range is settled, 1 some hour is Failed,
Expired or of unknown outcome (Sending: not recorded yet, or its sender died), 2 bad usage or
no access to the ledger. So it can run in a CronJob or CI.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from entitlement_sidecar.operator import ledger
from entitlement_sidecar.operator.ledger import HourRecord, Phase

EXIT_OK, EXIT_ATTENTION, EXIT_USAGE = 0, 1, 2
ATTENTION = frozenset({Phase.FAILED, Phase.EXPIRED, Phase.SENDING})
COLUMNS = ("hour", "dimension", "quantity", "phase", "meteringRecordId", "caller", "attempts")


def main(argv: list[str]) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        since, until = _moment(args.since), _moment(args.until)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        return int(stop.code or 0)
    except ValueError as error:
        print(f"entitlement-sidecar operator report: {error}", file=sys.stderr)
        return EXIT_USAGE
    namespace = (
        args.namespace
        or os.environ.get("ENTITLEMENT_OPERATOR_LEDGER_NAMESPACE")
        or (os.environ.get("POD_NAMESPACE"))
    )
    if not namespace:
        print(
            "entitlement-sidecar operator report: --namespace (the ledger namespace) is required",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        hours = read(namespace, args.kubeconfig, args.context)
    except Exception as error:  # no cluster, no permission, no CRD: one line, exit 2
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(
            f"entitlement-sidecar operator report: cannot read the ledger: {first}", file=sys.stderr
        )
        return EXIT_USAGE
    chosen = [
        hour
        for hour in hours
        if (since is None or hour["record"].hour >= since)
        and (until is None or hour["record"].hour < until)
        and (not args.dimension or hour["record"].dimension in args.dimension)
        and (not args.phase or hour["record"].phase.value in args.phase)
        and (not args.product or hour["record"].product_code == args.product)
    ]
    sys.stdout.write(FORMATS[args.format](chosen))
    return EXIT_ATTENTION if any(h["record"].phase in ATTENTION for h in chosen) else EXIT_OK


def read(namespace: str, kubeconfig: str | None, context: str | None) -> list[dict[str, Any]]:
    """Every hour object of the ledger, oldest first, with its allocations."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from entitlement_sidecar.operator.store import LedgerStore

    if kubeconfig or context or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    else:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = k8s.ApiClient()
    store = LedgerStore(api, namespace)
    hours = []
    for obj in store.select(ledger.OPEN_LABEL):
        record = ledger.decode(obj)
        allocations = list((obj.get("status") or {}).get("allocations") or ())
        for index in range(1, record.allocation_parts + 1):
            part = store.get(ledger.part_name(record.name, record.client_token, index)) or {}
            allocations.extend((part.get("status") or {}).get("allocations") or ())
        hours.append({"record": record, "object": obj, "allocations": allocations})
    api.close()
    return sorted(hours, key=lambda h: (h["record"].hour, h["record"].dimension))


def _row(record: HourRecord) -> dict[str, Any]:
    return {
        "hour": ledger.to_time(record.hour),
        "dimension": record.dimension,
        "quantity": str(record.quantity) if record.quantity is not None else "",
        "phase": record.phase.value,
        "meteringRecordId": record.record_id,
        "caller": record.owner,
        "attempts": record.attempts,
    }


def as_table(hours: list[dict[str, Any]]) -> str:
    rows = [
        {**_row(h["record"]), "allocations": len(h["allocations"]), "note": _note(h["record"])}
        for h in hours
    ]
    header = [*COLUMNS, "allocations", "note"]
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in header}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in header).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in header).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def as_csv(hours: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, "resent", "errorCode", "allocationQuantity", "allocationTags"])
    for h in hours:
        row = _row(h["record"])
        base = [*row.values(), h["record"].resent, h["record"].error_code]
        for allocation in h["allocations"] or [None]:
            if allocation is None:
                writer.writerow([*base, "", ""])
                continue
            tags = ";".join(f"{k}={v}" for k, v in sorted(allocation.get("tags", {}).items()))
            writer.writerow([*base, allocation["quantity"], tags])
    return out.getvalue()


def as_json(hours: list[dict[str, Any]]) -> str:
    documents = [
        {
            **_row(h["record"]),
            "resent": h["record"].resent,
            "errorCode": h["record"].error_code,
            "message": (h["object"].get("status") or {}).get("message") or "",
            "allocations": h["allocations"],
        }
        for h in hours
    ]
    return json.dumps(documents, indent=2) + "\n"


FORMATS = {"table": as_table, "csv": as_csv, "json": as_json}


def _note(record: HourRecord) -> str:
    if record.phase is Phase.SENDING:
        return "outcome not recorded"
    notes = [record.error_code] if record.error_code else []
    return ", ".join([*notes, "resent"] if record.resent else notes)


def _moment(text: str | None) -> datetime | None:
    """An RFC 3339 time or a date (UTC midnight)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time (RFC 3339, e.g. 2026-11-28T10:00:00Z)") from None
    return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entitlement-sidecar operator report",
        description="Print the metering operator's ledger: one line per hour and dimension.",
        epilog="Exit codes: 0 all settled, 1 an hour is Failed, Expired or of unknown outcome, "
        "2 bad usage or no access.",
    )
    parser.add_argument(
        "--namespace",
        help="ledger namespace (default: $ENTITLEMENT_OPERATOR_"
        "LEDGER_NAMESPACE, then $POD_NAMESPACE)",
    )
    parser.add_argument("--since", help="first hour (RFC 3339 or a date, UTC)")
    parser.add_argument("--until", help="hours before this (RFC 3339 or a date, UTC)")
    parser.add_argument("--dimension", action="append", help="only this dimension (repeatable)")
    parser.add_argument(
        "--phase", action="append", choices=[p.value for p in Phase], help="only this phase"
    )
    parser.add_argument("--product", help="only this product code")
    parser.add_argument("--format", choices=sorted(FORMATS), default="table")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster or ~/.kube)")
    parser.add_argument("--context", help="kubeconfig context")
    return parser
