"""The release this firmware runs: its version plus the identity of the build.

A fleet deployment installs every build into a release directory of its own
(``/opt/pafw/releases/<release id>/``, with the venv in ``venv/``) and writes the id into
``RELEASE`` beside the venv; ``/opt/pafw/current`` points at the running one. The id is
read once, when first asked (the appliance asks at start): a process keeps reporting the
release it was started from even after ``current`` has been switched to another.

Where there is no ``RELEASE`` file:

- a source checkout (``pyproject.toml`` beside the ``firmware`` package, as in ``./dev
  setup``'s editable install) reports ``<version>+src.<commit>`` (``+src`` without git), so a
  developer's appliance is never mistaken for a fleet build;
- any other installation (``pip install pafw-*.whl``) reports the plain version.

>>> describe_release("0.1.0", release_file=None, checkout=None)
'0.1.0'
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

from firmware import __version__

#: the file the deployment writes into each release directory, beside its venv
RELEASE_FILE = "RELEASE"
#: what a release id may contain (it is also a directory name)
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def release_file_of(prefix: Path) -> Path:
    """Where the ``RELEASE`` file of the venv at ``prefix`` lives (its parent directory)."""
    return prefix.resolve().parent / RELEASE_FILE


def read_release_file(path: Path) -> str | None:
    """The release id in ``path``; None when the file is missing, empty or not an id."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if RELEASE_ID.match(text) else None


def source_checkout(package_dir: Path) -> Path | None:
    """The repository root when the ``firmware`` package runs from a source checkout."""
    root = package_dir.resolve().parent
    return root if (root / "pyproject.toml").is_file() else None


def checkout_commit(root: Path) -> str | None:
    """The short commit of a git checkout (``.dirty`` appended with local changes)."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=False)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    suffix = ".dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
    return head.stdout.strip() + suffix


def describe_release(version: str, *, release_file: Path | None,
                     checkout: Path | None) -> str:
    """The release id from what was found: the deployment's file wins, then a checkout."""
    if release_file is not None:
        found = read_release_file(release_file)
        if found is not None:
            return found
    if checkout is not None:
        commit = checkout_commit(checkout)
        return f"{version}+src" + (f".{commit}" if commit else "")
    return version


@functools.cache
def release_id() -> str:
    """This process's release id (read once; see the module docstring)."""
    package_dir = Path(__file__).resolve().parents[1]
    return describe_release(__version__, release_file=release_file_of(Path(sys.prefix)),
                            checkout=source_checkout(package_dir))
