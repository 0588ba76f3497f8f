"""What every doctor check may read: the environment, the component and mode, what was resolved.

Checks run in order and later ones use what earlier ones found (the Region before the endpoint,
the endpoint before the clock), so the context carries those answers. The AWS client is built by
a factory the tests can point at the emulator; nothing here reads `os.environ` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SIDECAR = "sidecar"
OPERATOR = "operator"

# Modes (what the configured product needs): each selects its own checks.
REGISTER_USAGE = "register-usage"
METERING_OPERATOR = "metering-operator"
USAGE_INTAKE = "usage-intake"  # the sidecar also sends MeterUsage (ENTITLEMENT_USAGE_DIMENSIONS)
LICENSE_MANAGER = "license-manager"  # contract pricing: CheckoutLicense (ENTITLEMENT_PRODUCT_SKU)


def _metering_client(region: str) -> Any:
    from entitlement_sidecar.aws.metering import make_client

    return make_client(region, connect_timeout=3.0, read_timeout=5.0)


@dataclass
class Context:
    """One doctor run: inputs, and what the checks resolved so far."""

    environ: Mapping[str, str]
    component: str
    timeout: float = 3.0
    metering_client: Callable[[str], Any] = _metering_client
    settings: Any = None  # SidecarSettings | OperatorSettings once the settings check passed
    modes: list[str] = field(default_factory=list)
    region: str | None = None
    endpoint: str | None = None

    def variable(self, name: str) -> str:
        """The environment variable of setting `name` for this component."""
        prefix = "ENTITLEMENT_OPERATOR_" if self.component == OPERATOR else "ENTITLEMENT_"
        return prefix + name.upper()
