"""Command-line entry point: picks a subcommand and hands it the remaining arguments.

Deliberately lean: no argparse, no logging setup, no third-party import here. `check` runs as an
exec probe every few seconds in every pod, so the dispatcher must cost nothing beyond the
interpreter; each subcommand module parses its own arguments and imports what it needs.

Exit codes shared by every subcommand (each subcommand documents any extra ones):
    0 success, 2 invalid usage or configuration.
"""

from __future__ import annotations

import sys

from entitlement_sidecar.errors import EXIT_CONFIG

TYPE_CHECKING = False  # `collections.abc`/`importlib` would cost every exec probe ~5 ms
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


# subcommand -> (module, one-line help). The module exposes `main(argv: list[str]) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "entitlement_sidecar.sidecar.commands.run",
        "register at start, then serve probes until SIGTERM",
    ),
    "register": (
        "entitlement_sidecar.sidecar.commands.register",
        "one-shot RegisterUsage (init containers, ECS)",
    ),
    "check": (
        "entitlement_sidecar.sidecar.commands.check",
        "exit 0 iff this instance is entitled (probes)",
    ),
    "usage": (
        "entitlement_sidecar.sidecar.commands.usage",
        "report usage to this pod's sidecar (usage add DIMENSION QUANTITY)",
    ),
    "policy": (
        "entitlement_sidecar.sidecar.commands.policy",
        "bake the image policy at build time, or show it",
    ),
    "license": (
        "entitlement_sidecar.sidecar.commands.license",
        "License Manager heartbeat / seat check-in (run starts them)",
    ),
    "emulator": (
        "entitlement_sidecar.emulator.cli",
        "run the local AWS Marketplace Metering emulator",
    ),
    "operator": (
        "entitlement_sidecar.operator.cli",
        "run the hourly MeterUsage operator; `operator report`: its billing record",
    ),
    "doctor": (
        "entitlement_sidecar.doctor.cli",
        "find a misconfiguration before AWS refuses the pod",
    ),
    "demo": ("entitlement_sidecar.demo", "narrated walk-through on the embedded emulator"),
}


def usage() -> str:
    lines = ["usage: entitlement-sidecar COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `entitlement-sidecar COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0 if args else EXIT_CONFIG
    if args[0] == "--version":
        from entitlement_sidecar import __version__

        print(__version__)
        return 0
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"entitlement-sidecar: unknown command {args[0]!r}", file=sys.stderr)
        print(usage(), file=sys.stderr)
        return EXIT_CONFIG
    module = __import__(command[0], fromlist=["main"])
    entry: Callable[[list[str]], int] = module.main
    return entry(args[1:])
