"""Entry point of the sandbox child: ``python -I -m aarlab.verify.child`` with the spec on stdin.

Order matters: the seccomp filter and the audit hook are in place *before* any untrusted code is
imported. The spec names a
trusted entry function (``module:function``) that loads and runs the untrusted method; its
JSON-serialisable return value, or the exception it raised, goes to the parent as one JSON line on
fd 3 (a pipe), after the audit events. The hook is telemetry: the confinement is the kernel's.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any, TextIO


def _channel() -> TextIO:
    try:
        return os.fdopen(3, "w", encoding="utf-8", buffering=1)
    except OSError:  # run by hand without a channel: write to stdout instead
        return sys.stdout


def main() -> int:
    """The exec path: the spec arrives on stdin."""
    return run_spec(json.loads(sys.stdin.read()))


def run_spec(spec: dict[str, Any]) -> int:
    """Run one spec in this (already confined) process: the exec path's ``main`` and the zygote's
    forked child (``aarlab.sandbox.zygote``) both come here, so both load seccomp and the audit hook
    the same way before any untrusted import."""
    chan = _channel()
    from aarlab.sandbox.seccomp import install as load_seccomp
    from aarlab.verify.audit import AuditPolicy, install

    why = load_seccomp()  # before any untrusted code: irreversible
    if why:
        chan.write(json.dumps({"audit": {"event": "seccomp_unavailable", "why": why}}) + "\n")
    if os.path.exists("/proc/vmstat"):  # /proc not mounted subset=pid (a kernel before 5.8)
        chan.write(json.dumps({"audit": {"event": "proc_host_counters_visible"}}) + "\n")
    install(AuditPolicy.from_json(spec["policy"]), chan)
    try:
        module, _, func = spec["entry"].partition(":")
        fn = getattr(importlib.import_module(module), func)
        result = fn(**spec.get("kwargs", {}))
        line = json.dumps({"result": result})
    except BaseException as e:  # report every failure of untrusted code as data, never crash silently
        line = json.dumps(
            {
                "error": {
                    "type": type(e).__name__,
                    "message": str(e)[:4000],
                    "traceback": traceback.format_exc(limit=12)[-6000:],
                }
            }
        )
    chan.write(line + "\n")
    chan.flush()
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
