"""`entitlement-sidecar doctor`: find a misconfiguration before AWS refuses the pod.

Each check looks at one thing (settings, identity, Region, endpoint, clock, status directory, key
ring, allow-list, permissions, ...) and reports ok / warn / fail with what it found and the fix in
one sentence. Checks never change state: no RegisterUsage, no seat checkout, no metering record.
"""
