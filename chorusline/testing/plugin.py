"""The pytest plugin (entry point ``pytest11: chorusline``): chorusline's fixtures, in
every test run of a project that installs chorusline, with no conftest to write.

Loaded by pytest at start-up whether or not a test uses it, so it imports only the
fixture definitions; they import the kernel, the chat service and torch when used.
"""

from chorusline.testing.fixtures import (
    actor_system,
    chat_service,
    chorusline_model,
    chorusline_settings,
)

__all__ = ["actor_system", "chat_service", "chorusline_model", "chorusline_settings"]
