"""Usage the app reports: custom metering from inside the pod or task (`ENTITLEMENT_USAGE_*`).

The app posts usage events to a loopback-only endpoint of the long-lived `run` parent, which makes
each one durable in a journal on the status volume before it answers 202. Each completed UTC hour
is sealed (its totals per dimension fixed, write-ahead) and a short-lived child sends one
MeterUsage per dimension with this pod's or task's own identity; SIGTERM seals and sends the
partial hour. Map: `units` (quantities and hours), `events` (what the app may post), `journal`
(the durable state), `plan` (pure decisions: seal, send, back off, expire), `intake` (the HTTP
side), `service` (the parent's half, wired into the supervisor), `report` (/status, /metrics and
GET /v1/usage views), `config` (the lean settings reader), `client` (a tiny HTTP client for the
`usage` command), `sender` (the child: MeterUsage through `aws/metering.py`). Everything but
`sender` is standard library only: it lives in the process that stays up in every pod.
"""
