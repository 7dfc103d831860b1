"""The dashboard's files, read once from the package and served from memory.

A fixed set (whatever ``firmware/web/static`` holds at start), so no request path ever
reaches the file system; ETags let browsers revalidate cheaply, and the HTML carries a
Content-Security-Policy that allows nothing but this origin.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import mimetypes

from firmware.web.http import Response

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml",
         ".json": "application/json", ".png": "image/png", ".ico": "image/x-icon"}


class StaticFiles:
    """``/`` is ``index.html``; ``/static/<name>`` every other file of the directory."""

    def __init__(self, package: str = "firmware.web") -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        root = importlib.resources.files(package).joinpath("static")
        if not root.is_dir():
            return
        for entry in root.iterdir():
            if not entry.is_file() or entry.name.startswith("."):
                continue
            body = entry.read_bytes()
            suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
            kind = TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0] or \
                "application/octet-stream"
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            path = "/" if entry.name == "index.html" else f"/static/{entry.name}"
            self.files[path] = (body, kind, etag)
            if entry.name == "index.html":
                self.files["/index.html"] = (body, kind, etag)

    def has(self, path: str) -> bool:
        return path in self.files

    def response(self, path: str, if_none_match: str | None) -> Response:
        """The file, or 304 when the browser's copy is current."""
        body, kind, etag = self.files[path]
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if kind.startswith("text/html"):
            headers["Content-Security-Policy"] = CSP
        if if_none_match is not None and _matches(etag, if_none_match):
            return Response(304, b"", kind, headers)
        return Response(200, body, kind, headers)


def _matches(etag: str, if_none_match: str) -> bool:
    """RFC 9110 13.1.2: ``*`` matches any current file; tags compare weakly (``W/"x"``, as a
    compressing proxy forwards it, is ``"x"``)."""
    if if_none_match.strip() == "*":
        return True
    return etag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
