"""The dashboard's files served from memory (firmware/web/static_files.py): the fixed set read
from a package's ``static`` directory (hidden files and subdirectories left out), their media
types, ETags and conditional answers, and the Content-Security-Policy on HTML only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmware.web.static_files import CSP, StaticFiles

PACKAGED = Path(__file__).resolve().parents[2] / "firmware" / "web" / "static"


@pytest.fixture(scope="module")
def dashboard() -> StaticFiles:
    return StaticFiles()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def test_the_packaged_dashboard(dashboard: StaticFiles) -> None:
    shipped = {p.name for p in PACKAGED.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert {"index.html", "app.js", "app.css", "favicon.svg"} <= shipped
    assert set(dashboard.files) == {"/", "/index.html"} | {
        f"/static/{name}" for name in shipped - {"index.html"}}
    for path, name in [("/", "index.html"), ("/index.html", "index.html"),
                       ("/static/app.js", "app.js"), ("/static/favicon.svg", "favicon.svg")]:
        response = dashboard.response(path, None)
        assert response.status == 200
        assert response.body == (PACKAGED / name).read_bytes()
        assert response.headers["ETag"] == etag_of(response.body)
        assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(("path", "media_type"), [
    ("/", "text/html; charset=utf-8"), ("/static/app.js", "text/javascript; charset=utf-8"),
    ("/static/app.css", "text/css; charset=utf-8"), ("/static/favicon.svg", "image/svg+xml"),
])
def test_media_types(dashboard: StaticFiles, path: str, media_type: str) -> None:
    assert dashboard.response(path, None).content_type == media_type


def test_only_html_carries_the_content_security_policy(dashboard: StaticFiles) -> None:
    assert dashboard.response("/", None).headers["Content-Security-Policy"] == CSP
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert "Content-Security-Policy" not in dashboard.response("/static/app.js", None).headers


@pytest.mark.parametrize("path", ["/static/index.html", "/static/", "/static/../cli.py",
                                  "/app.js", "/static/APP.JS", ""])
def test_nothing_outside_the_set_is_there(dashboard: StaticFiles, path: str) -> None:
    assert not dashboard.has(path)
    with pytest.raises(KeyError):
        dashboard.response(path, None)


def test_a_current_copy_gets_304_without_body(dashboard: StaticFiles) -> None:
    etag = dashboard.response("/static/app.js", None).headers["ETag"]
    for header in (etag, f'"other", {etag}', f" {etag} ,\"x\""):
        answer = dashboard.response("/static/app.js", header)
        assert (answer.status, answer.body) == (304, b"")
        assert answer.headers["ETag"] == etag
    html = dashboard.response("/", dashboard.response("/", None).headers["ETag"])
    assert html.status == 304 and html.headers["Content-Security-Policy"] == CSP
    for stale in ('"other"', "", etag.strip('"'), etag + "x"):
        assert dashboard.response("/static/app.js", stale).status == 200


@pytest.mark.parametrize("header", ["weak", "*"])
def test_weak_and_any_entity_tags_match(dashboard: StaticFiles, header: str) -> None:
    etag = dashboard.response("/static/app.js", None).headers["ETag"]
    sent = "W/" + etag if header == "weak" else "*"
    assert dashboard.response("/static/app.js", sent).status == 304


def make_package(root: Path, name: str, files: dict[str, bytes]) -> None:
    package = root / name
    (package / "static" / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for file_name, body in files.items():
        (package / "static" / file_name).write_bytes(body)
    (package / "static" / "sub" / "nested.js").write_bytes(b"nested")


def test_any_package_static_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(tmp_path, "pafw_test_static_pkg", {
        "index.html": b"<p>hi</p>", ".hidden.js": b"secret", "notes.txt": b"text",
        "blob": b"\x00\x01", "data.json": b"{}", "icon.png": b"\x89PNG"})
    monkeypatch.syspath_prepend(str(tmp_path))
    files = StaticFiles("pafw_test_static_pkg")
    assert set(files.files) == {"/", "/index.html", "/static/notes.txt", "/static/blob",
                                "/static/data.json", "/static/icon.png"}
    assert files.response("/static/notes.txt", None).content_type.startswith("text/plain")
    assert files.response("/static/blob", None).content_type == "application/octet-stream"
    assert files.response("/static/data.json", None).content_type == "application/json"
    assert files.response("/static/icon.png", None).content_type == "image/png"
    assert files.response("/", None).body == b"<p>hi</p>"


def test_a_package_without_static_directory_serves_nothing() -> None:
    files = StaticFiles("firmware.dsp")
    assert files.files == {} and not files.has("/")
