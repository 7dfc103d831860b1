# ruff: noqa  (customer-style script: names injected by the worker, study code verbatim)
"""Needs unsafe_allow_refused_imports=["os"] (containment tests only)."""

import os
import struct
import time


class ExitThree(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        os._exit(3)


class ForkBomb(CustomPythonAction):
    """Forks until refused; each child holds its process slot for a while."""

    made = 0
    refused = 0

    def on_trigger(self, trigger_type, data):
        while self.refused < 20 and self.made < 500:
            try:
                pid = os.fork()
            except PermissionError:
                raise
            except OSError:
                self.refused += 1
                continue
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            self.made += 1
        return True

    def get_status(self):
        return {"made": self.made, "refused": self.refused, "uid": os.getuid()}


class ReadFile(CustomPythonAction):
    def on_trigger(self, trigger_type, data):
        try:
            with open(data["path"]) as f:
                f.read()
        except PermissionError:
            return False
        return True

    def get_status(self):
        return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}


class ForgeFrame(CustomPythonAction):
    """Writes a frame header announcing 50 MB straight onto the worker's socket."""

    def on_trigger(self, trigger_type, data):
        with open("/proc/self/cmdline", "rb") as f:
            args = f.read().split(b"\0")
        fd = int(args[args.index(b"--fd") + 1])
        os.write(fd, struct.pack(">I", 50_000_000))
        time.sleep(5)
        return True
