"""The monitoring tests render the charts too: the delivery tests' helm fixtures, shared."""

from tests.delivery.conftest import example_chart, helm, tools_bin

__all__ = ["example_chart", "helm", "tools_bin"]
