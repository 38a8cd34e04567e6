"""Pages shipped in the package (the console, the chat page): their files and headers.

What more than one page uses (building elements, the SSE parser, the error type) is one
copy under ``common/static``, served at ``/common/static`` to every page.

A page is a folder of files under ``chorusline/web/<name>/static``, listed once when the
app is built, so a request can only name one of them: no path is ever joined from the
URL, and ``..`` or an encoded slash finds nothing. Every page response carries the same
strict Content-Security-Policy: the page's own scripts, styles and fetches only, no
inline script or style, no frames, no form that posts anywhere (the pages send with
``fetch``), so even text that slipped past a page's own escaping could not run.
"""

from __future__ import annotations

import mimetypes
from importlib.resources import files
from importlib.resources.abc import Traversable

from quart import Response
from quart_trio import QuartTrio

from chorusline.protocols import NotFound

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


def static_files(page: str) -> dict[str, Traversable]:
    """Every file under ``<page>/static``, by its path relative to that folder."""
    found: dict[str, Traversable] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.is_file():
                found[f"{prefix}{entry.name}"] = entry

    folder = files("chorusline.web") / page / "static"
    if folder.is_dir():
        walk(folder, "")
    return found


def page_response(body: bytes, mimetype: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers.update(PAGE_HEADERS)
    return response


def serve_files(app: QuartTrio, page: str, prefix: str) -> dict[str, Traversable]:
    """Route ``<prefix>/<file>`` to ``page``'s files; returns them (for its HTML routes)."""
    assets = static_files(page)

    async def asset(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            raise NotFound(f"no {page} file {name!r}")
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if mimetype == "text/javascript":
            mimetype = "application/javascript"  # what every browser accepts for modules
        return page_response(found.read_bytes(), mimetype)

    app.add_url_rule(f"{prefix}/<path:name>", f"{page}_asset", asset, methods=["GET"])
    return assets


def register_common(app: QuartTrio) -> None:
    """Serve the modules every page imports from ``/common/static``."""
    serve_files(app, "common", "/common/static")
