"""The release id: from the deployment's RELEASE file, a source checkout, or the version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from firmware import __version__
from firmware.app.release import (
    checkout_commit,
    describe_release,
    read_release_file,
    release_file_of,
    release_id,
    source_checkout,
)

REPO = Path(__file__).resolve().parents[2]


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_deployments_release_file_wins(tmp_path: Path) -> None:
    release = tmp_path / "releases" / "0.2.0-0123456789"
    (release / "venv").mkdir(parents=True)
    (release / "RELEASE").write_text("0.2.0-0123456789\n")
    current = tmp_path / "current"
    current.symlink_to("releases/0.2.0-0123456789")
    # through the link the service starts from: the release it points at when first read
    found = release_file_of(current / "venv")
    assert found == release / "RELEASE"
    assert describe_release("0.2.0", release_file=found, checkout=REPO) == "0.2.0-0123456789"


def test_a_bad_release_file_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "RELEASE"
    assert read_release_file(path) is None  # missing
    for text in ("", "../../etc\n", "a b\n", "x" * 200):
        path.write_text(text)
        assert read_release_file(path) is None, text
    path.write_bytes(b"\xff\xfe")
    assert read_release_file(path) is None
    assert describe_release("1.0", release_file=path, checkout=None) == "1.0"


def test_a_source_checkout_reports_its_commit(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "firmware").mkdir(parents=True)
    assert source_checkout(repo / "firmware") is None  # no pyproject.toml: installed
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert source_checkout(repo / "firmware") == repo
    assert describe_release("1.0", release_file=None, checkout=repo) == "1.0+src"  # no git
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x")
    short = git(repo, "rev-parse", "--short=10", "HEAD")
    assert checkout_commit(repo) == short
    assert describe_release("1.0", release_file=None, checkout=repo) == f"1.0+src.{short}"
    (repo / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert describe_release("1.0", release_file=None, checkout=repo) == f"1.0+src.{short}.dirty"


def test_this_checkout_reports_a_source_release() -> None:
    assert release_id().startswith(f"{__version__}+src")
    assert release_id() is release_id()  # read once
