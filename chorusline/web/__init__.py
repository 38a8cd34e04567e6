"""chorusline.web: the OpenAI-compatible HTTP front end (see docs/design.md)."""

from chorusline.web.app import create_app
from chorusline.web.server import reuse_port_socket, serve

__all__ = ["create_app", "reuse_port_socket", "serve"]
