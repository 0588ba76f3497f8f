"""`python -m entitlement_sidecar` is the same as the `entitlement-sidecar` console script."""

import sys

from entitlement_sidecar.cli import main

sys.exit(main())
