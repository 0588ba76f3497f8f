"""`entitlement-sidecar operator`: load settings, set up logging, run kopf until stopped.

Exit codes: 0 clean stop, 2 invalid configuration (one line on stderr naming the variable), no
usable Kubernetes credentials, or no namespace whose workloads the operator may list.
kopf is imported only here, after the settings are valid.
"""

from __future__ import annotations

import logging
import sys

from entitlement_sidecar import logs
from entitlement_sidecar.errors import EXIT_CONFIG, ConfigurationError
from entitlement_sidecar.operator.settings import ENV_PREFIX, load_settings

log = logging.getLogger(__name__)
USAGE = f"""usage: entitlement-sidecar operator
       entitlement-sidecar operator report [--help]   (the billing record, from the ledger)

Run the hourly MeterUsage operator (kopf). Configured by {ENV_PREFIX}* environment variables
(see the README section "Metering operator"); {ENV_PREFIX}PRODUCT_CODE and {ENV_PREFIX}DIMENSIONS
are required, and the ledger namespace defaults to POD_NAMESPACE."""


def main(argv: list[str]) -> int:
    if argv and argv[0] == "report":
        from entitlement_sidecar.operator import report

        return report.main(argv[1:])
    return run(argv)


def run(argv: list[str]) -> int:
    """The operator itself, until SIGTERM."""
    if argv and argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    if argv:
        print(f"entitlement-sidecar operator: unexpected arguments {argv}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"entitlement-sidecar operator: {error}", file=sys.stderr)
        return EXIT_CONFIG
    logs.setup(settings.log_level, settings.log_format)

    import kopf
    from kubernetes.client import ApiException
    from kubernetes.config import ConfigException

    from entitlement_sidecar.operator import handlers  # noqa: F401 - registers the handlers
    from entitlement_sidecar.operator.store import watchable
    from entitlement_sidecar.operator.wiring import kube_api

    try:
        allowed, problems = watchable(kube_api(), settings.namespaces)
    except (ConfigException, ApiException, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(
            f"entitlement-sidecar operator: cannot use the Kubernetes API: {first}", file=sys.stderr
        )
        return EXIT_CONFIG
    for problem in problems:
        log.error(problem)
    if not allowed:
        print("entitlement-sidecar operator: no namespace can be watched", file=sys.stderr)
        return EXIT_CONFIG
    kopf.run(
        standalone=True,  # single sender via our own Lease, not kopf peering
        clusterwide=not settings.namespaces,
        namespaces=allowed if settings.namespaces else [],
        memo=kopf.Memo(config=settings, namespaces=allowed if settings.namespaces else []),
    )
    return 0
