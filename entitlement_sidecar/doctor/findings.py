"""What a doctor check reports, and how the report is printed (text for people, JSON for tools).

A `Finding` is one line: the check's name, ok / warn / fail, what it found, and, when it is not ok,
the fix in one sentence (the exact chart value, annotation or IAM action). The exit code of the
whole run is 0 when nothing failed and 1 when something did.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from entitlement_sidecar.record import Record

OK = "ok"
WARN = "warn"
FAIL = "fail"
STATUSES = (OK, WARN, FAIL)
EXIT_HEALTHY = 0
EXIT_FAILED = 1


class Finding(Record):
    """One check's verdict: `status` is ok, warn or fail; `fix` is empty when nothing is to do."""

    __slots__ = ("check", "fix", "found", "status")

    def __init__(self, check: str, status: str, found: str, fix: str = "") -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.check = check
        self.status = status
        self.found = " ".join(found.split())  # one line, whatever the message held
        self.fix = " ".join(fix.split())


def ok(check: str, found: str) -> Finding:
    return Finding(check, OK, found)


def warn(check: str, found: str, fix: str) -> Finding:
    return Finding(check, WARN, found, fix)


def fail(check: str, found: str, fix: str) -> Finding:
    return Finding(check, FAIL, found, fix)


def exit_code(findings: Sequence[Finding]) -> int:
    """0 when no check failed, 1 otherwise (warnings do not fail the run)."""
    return EXIT_FAILED if any(f.status == FAIL for f in findings) else EXIT_HEALTHY


def render_text(findings: Sequence[Finding]) -> str:
    """One line per check: `status  check  found[; fix: ...]`, aligned."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for finding in findings:
        line = f"{finding.status:<4}  {finding.check:<{width}}  {finding.found}"
        if finding.fix:
            line += f"; fix: {finding.fix}"
        lines.append(line)
    return "\n".join(lines)


def render_json(findings: Sequence[Finding], mode: str) -> str:
    """The same report as one JSON document."""
    return json.dumps(
        {
            "mode": mode,
            "healthy": exit_code(findings) == EXIT_HEALTHY,
            "checks": [
                {"check": f.check, "status": f.status, "found": f.found, "fix": f.fix}
                for f in findings
            ],
        },
        indent=2,
    )
