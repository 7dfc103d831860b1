"""Where things are in the repository, for tests at any depth of ``tests/``."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USER_SCRIPTS = REPO / "user_scripts"
