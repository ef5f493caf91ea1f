"""Metrics tests run real turns with the runtime tests' harness."""

from tests.runtime.conftest import harness

__all__ = ["harness"]
