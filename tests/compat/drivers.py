"""The clients the compatibility table runs through: boto3 here, aiobotocore and the AWS CLI in
their own virtualenvs (`scripts/compat_env.py`), each reporting a `Result` per case.

Every driver signs as the case's caller with the case's secret, makes no retries, and reports
what its client saw: the error code it parsed, the HTTP status where the client exposes it, the
exception class, the output members, or that its own (older) service model refused the input.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

from entitlement_sidecar.emulator import Emulator
from entitlement_sidecar.testing import clean_env
from tests.compat.table import REGION, Case, Result

REPO = Path(__file__).resolve().parents[2]
Driver = Callable[[Emulator, Sequence[Case]], list[Result]]


def side_env(group: str) -> Path:
    """The bin directory of a client's own virtualenv (built once, from pyproject's group)."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compat_env.py"), group],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"compat_env {group} failed: {proc.stderr.strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def with_times(value: Any, anchor: datetime, render: Callable[[datetime], Any]) -> Any:
    """Replace `{"$now": seconds}` markers by `render(anchor + seconds)`."""
    if isinstance(value, dict):
        if set(value) == {"$now"}:
            return render(anchor + timedelta(seconds=value["$now"]))
        return {key: with_times(item, anchor, render) for key, item in value.items()}
    if isinstance(value, list):
        return [with_times(item, anchor, render) for item in value]
    return value


def boto3_driver(emu: Emulator, cases: Sequence[Case]) -> list[Result]:
    """Each case through a real boto3 client in this process (one client per caller)."""
    import boto3

    session: Any = boto3.session.Session()  # any service name: the table is not only Metering
    clients: dict[tuple[str, str, str], Any] = {}
    results = []
    anchor = datetime.now(UTC)
    for case in cases:
        key = (case.service, case.access_key_id, case.secret)
        if key not in clients:
            clients[key] = session.client(
                case.service,
                region_name=REGION,
                endpoint_url=emu.url,
                aws_access_key_id=case.access_key_id,
                aws_secret_access_key=case.secret,
                config=Config(retries={"total_max_attempts": 1}),
            )
        call = getattr(clients[key], xform_name(case.operation))
        try:
            reply = call(**with_times(case.params, anchor, lambda moment: moment))
        except ParamValidationError as exc:
            results.append(Result(None, None, client_model_lacks=str(exc).splitlines()[-1]))
            continue
        except ClientError as exc:
            status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            code = exc.response["Error"]["Code"]
            results.append(Result(code, status, type(exc).__name__))
            continue
        members = tuple(sorted(k for k in reply if k != "ResponseMetadata"))
        results.append(Result(None, reply["ResponseMetadata"]["HTTPStatusCode"], None, members))
    return results


def aiobotocore_driver(emu: Emulator, cases: Sequence[Case]) -> list[Result]:
    """All cases through aiobotocore, in one run of its own virtualenv's python."""
    python = side_env("compat-aiobotocore") / "python"
    job = {
        "endpoint": emu.url,
        "region": REGION,
        "cases": [
            {
                "service": case.service,
                "operation": case.operation,
                "params": case.params,
                "access_key_id": case.access_key_id,
                "secret": case.secret,
            }
            for case in cases
        ],
    }
    proc = subprocess.run(
        [str(python), str(Path(__file__).with_name("aio_runner.py"))],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=clean_env(AWS_EC2_METADATA_DISABLED="true"),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"aiobotocore runner failed: {proc.stderr.strip()[-2000:]}")
    return [
        Result(
            item.get("code"),
            item.get("status"),
            item.get("exception"),
            tuple(item.get("members", ())),
            item.get("client_model_lacks"),
        )
        for item in json.loads(proc.stdout)
    ]


_CLI_ERROR = re.compile(r"An error occurred \((?P<code>[A-Za-z0-9]+)\)")


def awscli_driver(emu: Emulator, cases: Sequence[Case]) -> list[Result]:
    """Each case as one `aws SERVICE OPERATION --cli-input-json ...` process (AWS CLI v1)."""
    aws = side_env("compat-awscli") / "aws"
    results = []
    anchor = datetime.now(UTC).replace(microsecond=0)
    for case in cases:
        params = with_times(case.params, anchor, lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))
        env = clean_env(
            AWS_ACCESS_KEY_ID=case.access_key_id,
            AWS_SECRET_ACCESS_KEY=case.secret,
            AWS_DEFAULT_REGION=REGION,
            AWS_MAX_ATTEMPTS="1",
            AWS_RETRY_MODE="standard",
            AWS_CONFIG_FILE="/nonexistent/aws-config",
            AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
            AWS_EC2_METADATA_DISABLED="true",
            AWS_PAGER="",
        )
        proc = subprocess.run(
            [str(aws), case.service, xform_name(case.operation, "-"), "--endpoint-url", emu.url,
             "--cli-input-json", json.dumps(params), "--output", "json"],
            capture_output=True, text=True, check=False, timeout=120, env=env,
        )  # fmt: skip
        if proc.returncode == 0:
            results.append(Result(None, None, None, tuple(sorted(json.loads(proc.stdout or "{}")))))
            continue
        match = _CLI_ERROR.search(proc.stderr)
        if match is not None:
            results.append(Result(match["code"], None, detail=proc.stderr.strip()))
        elif "Parameter validation failed" in proc.stderr:
            lacks = proc.stderr.strip().splitlines()[-1]
            results.append(Result(None, None, client_model_lacks=lacks))
        else:
            results.append(Result("CLIFailure", None, detail=proc.stderr.strip()[-500:]))
    return results
