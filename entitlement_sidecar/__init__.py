"""entitlement-sidecar: AWS Marketplace entitlement and metering for containers on EKS and ECS.

Kept import-free on purpose: the long-lived sidecar server and the `check` exec probe import this
package, and every module they pull in costs memory and start time in every pod.
"""

__version__ = "0.1.0"
