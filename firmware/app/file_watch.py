"""Watches a directory (the scripts, or the config file's) and reports files that changed,
once complete.

inotify through watchdog: a script counts as changed when a writer closes it after writing
(IN_CLOSE_WRITE: an editor saving, ``scp`` finishing) or when a file is renamed onto it (the
atomic way, used by ``pafw script push`` and ``rsync``). Plain modification events are not
enough on their own (an ``scp`` of a large file in slow chunks modifies it many times before
it is complete), so they only cancel a pending report: a new write has begun, and its close
or rename will be reported. A path is reported after ``debounce_s`` without further events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

log = logging.getLogger("pafw.reload")


def is_script(path: Path) -> bool:
    """A deployable script: ``*.py``, not hidden (uploads wait under hidden names)."""
    return path.suffix == ".py" and not path.name.startswith(".")


class FileWatcher(FileSystemEventHandler):
    """Calls ``on_change(path)`` (in the watcher's thread) for complete, settled changes."""

    def __init__(self, directory: Path, on_change: Callable[[Path], None], *,
                 debounce_s: float = 0.15,
                 match: Callable[[Path], bool] | None = None) -> None:
        self.directory = directory
        self.on_change = on_change
        self.match = match or is_script
        self.debounce_s = debounce_s
        self._timers: dict[Path, threading.Timer] = {}
        self._complete: set[Path] = set()
        self._lock = threading.Lock()
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self.events = 0

    def start(self) -> None:
        """Begin watching (the directory is created if missing)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(self, str(self.directory), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop watching and drop pending reports; idempotent."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
            self._observer = None
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            path, complete = Path(str(event.dest_path)), True
        elif isinstance(event, FileClosedEvent):
            path, complete = Path(str(event.src_path)), True
        elif isinstance(event, FileModifiedEvent | FileCreatedEvent):
            path, complete = Path(str(event.src_path)), False
        else:
            return
        if not self.match(path):
            return
        self.events += 1
        with self._lock:
            timer = self._timers.pop(path, None)
            if timer is not None:
                timer.cancel()
            if not complete:  # a write in progress: wait for its close or rename
                self._complete.discard(path)
                return
            self._complete.add(path)
            timer = threading.Timer(self.debounce_s, self._settled, args=(path,))
            timer.daemon = True
            self._timers[path] = timer
            timer.start()

    def _settled(self, path: Path) -> None:
        with self._lock:
            self._timers.pop(path, None)
            if path not in self._complete:
                return
            self._complete.discard(path)
        log.info("script changed: %s", path.name)
        try:
            self.on_change(path)
        except Exception:  # a failing reload is reported by the handler; keep watching
            log.exception("reload of %s failed", path)
