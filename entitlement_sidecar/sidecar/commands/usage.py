"""`entitlement-sidecar usage`: report usage to this pod's sidecar, read it back, or send it.

`usage add DIMENSION QUANTITY [--id ID] [--time TIME] [--tag KEY=VALUE ...]` posts one event to
the intake of the sidecar in the same pod or task (127.0.0.1:`ENTITLEMENT_USAGE_PORT`, or
`ENTITLEMENT_USAGE_SOCKET` when set): for shell-based apps. `usage show` prints GET /v1/usage.
`usage send --child --now T --budget S` is the sender round `run` spawns (not for people).
"""

from __future__ import annotations

import json
import os
import sys

from entitlement_sidecar.errors import EXIT_CONFIG, EXIT_OK, ConfigurationError, config_exit
from entitlement_sidecar.sidecar import envlite
from entitlement_sidecar.sidecar.defaults import DEFAULT_USAGE_PORT

USAGE = """usage: entitlement-sidecar usage add DIMENSION QUANTITY [--id ID] [--time TIME]
                                 [--tag KEY=VALUE ...] [--port PORT | --socket PATH]
       entitlement-sidecar usage show [--port PORT | --socket PATH]

Report usage to the sidecar in this pod or task (127.0.0.1:ENTITLEMENT_USAGE_PORT, default 9843,
or the Unix socket ENTITLEMENT_USAGE_SOCKET). QUANTITY is a decimal (12.5); --id makes a retry
safe (the sidecar counts an id once); --time (RFC 3339 or epoch seconds) picks the hour.
exit codes: 0 recorded (or already recorded), 1 not recorded (why on stderr), 2 invalid usage"""

NOT_RECORDED = 1


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return EXIT_OK if argv else EXIT_CONFIG
    command, rest = argv[0], argv[1:]
    if command == "send":
        return _send(rest)
    try:
        options, positional = _options(rest, {"--id", "--time", "--tag", "--port", "--socket"})
        target = _target(options)
    except (ConfigurationError, ValueError) as error:
        return config_exit(error)
    if command == "show" and not positional:
        return _call("GET", None, target)
    if command == "add" and len(positional) == 2:
        return _add(positional, options, target)
    print(USAGE, file=sys.stderr)
    return EXIT_CONFIG


def _add(
    positional: list[str], options: dict[str, list[str]], target: tuple[int, str | None]
) -> int:
    event: dict[str, object] = {"dimension": positional[0], "quantity": positional[1]}
    if "--id" in options:
        event["id"] = options["--id"][-1]
    if "--time" in options:
        moment = options["--time"][-1]
        event["time"] = float(moment) if moment.replace(".", "", 1).isdigit() else moment
    if "--tag" in options:
        try:
            event["tags"] = dict(tag.split("=", 1) for tag in options["--tag"])
        except ValueError:
            return config_exit("--tag takes KEY=VALUE")
    return _call("POST", json.dumps(event).encode(), target)


def _options(args: list[str], known: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    iterator = iter(args)
    for arg in iterator:
        if arg in known:
            value = next(iterator, None)
            if value is None:
                raise ValueError(f"{arg} needs a value")
            options.setdefault(arg, []).append(value)
        elif arg.startswith("--"):
            raise ValueError(f"unknown option {arg}")
        else:
            positional.append(arg)
    return options, positional


def _target(options: dict[str, list[str]]) -> tuple[int, str | None]:
    if "--socket" in options:
        return 0, options["--socket"][-1]
    if "--port" in options:
        return envlite.integer(
            {"ENTITLEMENT_PORT_": options["--port"][-1]}, "PORT_", 0, 1, 65535
        ), None
    socket_path = envlite.text(os.environ, "USAGE_SOCKET")
    port = envlite.integer(os.environ, "USAGE_PORT", DEFAULT_USAGE_PORT, 1, envlite.MAX_PORT)
    return port, socket_path


def _call(method: str, body: bytes | None, target: tuple[int, str | None]) -> int:
    from entitlement_sidecar.sidecar.usage.client import request

    port, unix = target
    where = unix or f"127.0.0.1:{port}"
    try:
        reply = request(method, "/v1/usage", body, port=port, unix=unix)
    except OSError as exc:
        print(
            f"entitlement-sidecar usage: not recorded: no usage intake at {where} "
            f"({exc.strerror or exc}); is ENTITLEMENT_USAGE_DIMENSIONS set on the sidecar?",
            file=sys.stderr,
        )
        return NOT_RECORDED
    text = reply.body.decode("utf-8", "replace").strip()
    if reply.status in {200, 202}:
        print(text)
        return EXIT_OK
    print(f"entitlement-sidecar usage: not recorded: HTTP {reply.status}: {text}", file=sys.stderr)
    return NOT_RECORDED


def _send(args: list[str]) -> int:
    """The sender round `run` spawns (`--child`): exit 0 after the round, 2 on bad settings."""
    try:
        if "--child" not in args:
            raise ValueError("`usage send` is run by `entitlement-sidecar run` (--child)")
        options, _ = _options([a for a in args if a != "--child"], {"--now", "--budget"})
        now = float(options["--now"][-1])
        budget = float(options["--budget"][-1])
    except (KeyError, ValueError) as error:
        return config_exit(error)
    try:
        from entitlement_sidecar import logs
        from entitlement_sidecar.sidecar.settings import load_settings
        from entitlement_sidecar.sidecar.usage.sender import send_round

        settings = load_settings()
        logs.setup(settings.log_level, settings.log_format)
        code = send_round(settings, os.environ, now=now, budget=budget, out=sys.stdout)
    except ConfigurationError as error:
        code = config_exit(error)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
