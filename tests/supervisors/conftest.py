"""The supervisor tests use the kernel tests' recording actors and fixtures."""

from tests.actors.conftest import Counter, Log, Recorder, log, system

__all__ = ["Counter", "Log", "Recorder", "log", "system"]
