"""Run compatibility cases through aiobotocore; executed by the side virtualenv's python.

Reads `{"endpoint": URL, "region": R, "cases": [{service, operation, params, access_key_id,
secret}, ...]}` as JSON on stdin, makes each call in order with a fresh aiobotocore client (no
retries) and prints one JSON list of results. Imports only the standard library and aiobotocore
(its own botocore), never the project.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

ANCHOR = datetime.now(UTC)  # every marker is relative to the start of the run


def _times(value: Any) -> Any:
    """Replace `{"$now": seconds}` markers by datetimes."""
    if isinstance(value, dict):
        if set(value) == {"$now"}:
            return ANCHOR + timedelta(seconds=value["$now"])
        return {key: _times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_times(item) for item in value]
    return value


async def _one(session: Any, job: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    from aiobotocore.config import AioConfig
    from botocore import xform_name
    from botocore.exceptions import ClientError, ParamValidationError

    config = AioConfig(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30)
    async with session.create_client(
        case["service"],
        region_name=job["region"],
        endpoint_url=job["endpoint"],
        aws_access_key_id=case["access_key_id"],
        aws_secret_access_key=case["secret"],
        config=config,
    ) as client:
        try:
            reply = await getattr(client, xform_name(case["operation"]))(**_times(case["params"]))
        except ParamValidationError as exc:
            return {"client_model_lacks": str(exc).splitlines()[-1]}
        except ClientError as exc:
            return {
                "code": exc.response["Error"]["Code"],
                "status": exc.response["ResponseMetadata"]["HTTPStatusCode"],
                "exception": type(exc).__name__,
            }
        members = sorted(key for key in reply if key != "ResponseMetadata")
        return {
            "code": None,
            "status": reply["ResponseMetadata"]["HTTPStatusCode"],
            "members": members,
        }


async def main() -> None:
    from aiobotocore.session import get_session

    job = json.load(sys.stdin)
    session = get_session()
    results = [await _one(session, job, case) for case in job["cases"]]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
