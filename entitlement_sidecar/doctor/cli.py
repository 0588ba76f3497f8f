"""`entitlement-sidecar doctor [--operator] [--format text|json] [--timeout SECONDS]`.

Runs every check that applies to the configured component (the sidecar, or the metering operator
with `--operator` or when only `ENTITLEMENT_OPERATOR_*` is set) and its mode, one line per check.
Exit codes: 0 nothing failed, 1 something failed, 2 the doctor's own usage error.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from entitlement_sidecar.doctor import aws_checks, license_checks, permission_checks, setup_checks
from entitlement_sidecar.doctor.context import (
    LICENSE_MANAGER,
    METERING_OPERATOR,
    OPERATOR,
    REGISTER_USAGE,
    SIDECAR,
    USAGE_INTAKE,
    Context,
)
from entitlement_sidecar.doctor.findings import Finding, exit_code, render_json, render_text, warn
from entitlement_sidecar.errors import EXIT_CONFIG


@dataclass(frozen=True)
class Step:
    """A check by name; `needs_settings` checks say "not checked" while the settings are invalid."""

    name: str
    run: Callable[[Context], Finding]
    needs_settings: bool = True


STATUS_DIR = Step("status-dir", setup_checks.status_dir)
KEY_RING = Step("key-ring", setup_checks.key_ring)
TRUSTED_CODES = Step("trusted-codes", setup_checks.trusted_codes)
IDENTITY = Step("identity", aws_checks.identity, needs_settings=False)
REGION = Step("region", aws_checks.region, needs_settings=False)
ENDPOINT = Step("endpoint", aws_checks.endpoint, needs_settings=False)
CLOCK = Step("clock", aws_checks.clock, needs_settings=False)
REGISTER_PERMISSION = Step("permission", permission_checks.register_usage)
METER_PERMISSION = Step("permission", permission_checks.meter_usage)
USAGE_PERMISSION = Step("usage-permission", permission_checks.meter_usage)
# License Manager mode (contract pricing): its own identity rules, Region, endpoint and license.
PRODUCT_SKU = Step("product-sku", license_checks.product_sku)
LICENSE_IDENTITY = Step("identity", license_checks.identity, needs_settings=False)
LICENSE_REGION = Step("region", license_checks.region)
LICENSE_ENDPOINT = Step("endpoint", license_checks.endpoint)
LICENSE = Step("license", license_checks.license_)


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds from 0 to 60")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="entitlement-sidecar doctor",
        description="Find a misconfiguration before AWS refuses the pod. Changes nothing: no "
        "RegisterUsage, no seat checkout, no metering record.",
        epilog="exit codes: 0 nothing failed, 1 a check failed, 2 usage error",
    )
    p.add_argument("--operator", action="store_true", help="check the metering operator")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    p.add_argument(
        "--timeout", type=_timeout, default=3.0, metavar="SECONDS", help="per network probe"
    )
    return p


def component(environ: Mapping[str, str], operator_flag: bool) -> str:
    """The operator when asked, or when only the operator's settings are present."""
    only_operator = "ENTITLEMENT_OPERATOR_PRODUCT_CODE" in environ and not environ.get(
        "ENTITLEMENT_PRODUCT_CODE"
    )
    return OPERATOR if operator_flag or only_operator else SIDECAR


def plan(ctx: Context) -> list[Step]:
    """The checks for the component and its modes, in order (later ones use earlier answers)."""
    network = [IDENTITY, REGION, ENDPOINT, CLOCK]
    if ctx.component == OPERATOR:
        ctx.modes = [METERING_OPERATOR]
        return [*network, METER_PERMISSION]
    if getattr(ctx.settings, "product_sku", None):
        ctx.modes = [LICENSE_MANAGER]
        steps = [STATUS_DIR, PRODUCT_SKU, LICENSE_IDENTITY, LICENSE_REGION, LICENSE_ENDPOINT]
        steps += [CLOCK, LICENSE]
    else:
        ctx.modes = [REGISTER_USAGE]
        steps = [STATUS_DIR, KEY_RING, TRUSTED_CODES, *network, REGISTER_PERMISSION]
    if getattr(ctx.settings, "usage_dimensions", None):
        ctx.modes.append(USAGE_INTAKE)
        steps.append(USAGE_PERMISSION)  # the sidecar meters too: its role needs MeterUsage
    return steps


def diagnose(ctx: Context) -> list[Finding]:
    """Run every applicable check; those that need valid settings say so when they are not."""
    findings = [setup_checks.settings(ctx)]
    for step in plan(ctx):
        if step.needs_settings and ctx.settings is None:
            findings.append(warn(step.name, "not checked: the settings are invalid", "fix them"))
        else:
            found = step.run(ctx)  # a check run under another step's name reports as that step
            findings.append(Finding(step.name, found.status, found.found, found.fix))
    return findings


def main(argv: list[str]) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help (0) or a usage error (2)
        return done.code if isinstance(done.code, int) else EXIT_CONFIG
    environ = dict(os.environ)
    ctx = Context(environ, component(environ, args.operator), timeout=args.timeout)
    findings = diagnose(ctx)
    if args.format == "json":
        print(render_json(findings, ",".join(ctx.modes)))
    else:
        print(f"entitlement-sidecar doctor: {ctx.component} ({', '.join(ctx.modes)})")
        print(render_text(findings))
    sys.stdout.flush()
    return exit_code(findings)
