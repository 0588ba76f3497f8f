"""The metering operator: aggregates annotated workloads into one hourly MeterUsage per dimension.

Optional (`pip install 'entitlement-sidecar[operator]'`), run as `entitlement-sidecar operator`.
Pure modules (annotations, accounting, allocation, ledger) hold the decisions; store, sender,
engine, handlers and wiring do the I/O. See the README section "Metering operator".
"""
