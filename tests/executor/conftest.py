"""The executor's own tests use the same fixtures as the e2e tests (tests/support/executor.py)."""

from tests.support.executor import executor, volume_provisioner

__all__ = ["executor", "volume_provisioner"]
