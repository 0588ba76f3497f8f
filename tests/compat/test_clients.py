"""The compatibility table through real clients: boto3 and aiobotocore always, the AWS CLI in the
optional slow set (`pytest --with-slow`; each call is a process: ~0.5 s, 12 s for the table).

A client's own service model may be older than the emulator's (aiobotocore and the AWS CLI pin
older botocore releases): a case whose input that model refuses is skipped with the reason, and
only the cases listed in `NEWER_THAN_SOME_CLIENTS` may be.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.emulator.model import MODELED_ERRORS
from tests.compat.drivers import Driver, aiobotocore_driver, awscli_driver, boto3_driver
from tests.compat.table import CASES, SCENARIO, Case, Result

# Inputs newer than some clients' models: decimal quantities (botocore >= 1.44).
NEWER_THAN_SOME_CLIENTS = {"meter-decimal-allocations"}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(boto3_driver, id="boto3"),
        pytest.param(aiobotocore_driver, id="aiobotocore"),
        pytest.param(awscli_driver, id="awscli", marks=pytest.mark.slow),
    ],
)
def outcomes(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Result]]]:
    """The whole table run in order by one client against a fresh emulator."""
    driver: Driver = request.param
    with Emulator(SCENARIO) as emu:
        results = driver(emu, CASES)
        yield (
            request.node.callspec.id if hasattr(request.node, "callspec") else "",
            dict(zip((case.id for case in CASES), results, strict=True)),
        )


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_client_sees_the_table(outcomes: tuple[str, dict[str, Result]], case: Case) -> None:
    """Each client parses the answer the table says: error code, status and modeled exception
    class, or the output members."""
    _, results = outcomes
    result = results[case.id]
    if result.client_model_lacks is not None:
        assert case.id in NEWER_THAN_SOME_CLIENTS, result.client_model_lacks
        pytest.skip(f"this client's service model refuses the input: {result.client_model_lacks}")
    assert result.code == case.error, result.detail
    if result.status is not None:
        assert result.status == case.status
    if case.error is None:
        assert set(case.expect) <= set(result.members)
    elif case.error in MODELED_ERRORS and result.exception is not None:
        assert result.exception == case.error  # client.exceptions.<Code>, not a bare ClientError
