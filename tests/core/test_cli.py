"""The command table of `entitlement-sidecar`: every entry imports and dispatches."""

from __future__ import annotations

import importlib
import inspect

import pytest

from entitlement_sidecar import cli
from entitlement_sidecar.errors import EXIT_CONFIG


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_module_imports_and_has_main(command: str) -> None:
    """Each lazily imported command module exists and exposes `main(argv) -> int`."""
    module = importlib.import_module(cli.COMMANDS[command][0])
    main = module.main
    assert callable(main)
    assert list(inspect.signature(main).parameters) == ["argv"]


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_answers_help_with_exit_0(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`entitlement-sidecar COMMAND --help` prints usage and exits 0 without side effects."""
    assert cli.main([command, "--help"]) == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_usage_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level help names every command."""
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {command} " in out for command in cli.COMMANDS)


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command exits 2 and says which one."""
    assert cli.main(["frobnicate"]) == EXIT_CONFIG
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
