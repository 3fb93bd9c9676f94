"""Entry point of the sandbox child: ``python -I -m aarlab.verify.child SPEC.json``.

Order matters: limits and audit hooks are in place *before* any untrusted code is imported. The spec
names a trusted entry function (``module:function``) that loads and runs the untrusted method; its
JSON-serialisable return value is written to the spec's ``out`` file.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    from aarlab.verify.audit import AuditPolicy, install

    install(AuditPolicy.from_json(spec["policy"]), Path(spec["audit_log"]))
    out = Path(spec["out"])
    try:
        module, _, func = spec["entry"].partition(":")
        fn = getattr(importlib.import_module(module), func)
        result = fn(**spec.get("kwargs", {}))
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ok": True, "result": result}), encoding="utf-8")
        tmp.replace(out)
        return 0
    except BaseException as e:  # report every failure of untrusted code as data, never crash silently
        tb = traceback.format_exc(limit=8)
        out.write_text(
            json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": tb[-4000:]}),
            encoding="utf-8",
        )
        return 1


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main(sys.argv[1]))
