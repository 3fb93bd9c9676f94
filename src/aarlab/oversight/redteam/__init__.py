"""Red-team methods: one per known reward hack, used by the red-team suite and the demo's red-team agent.

Each is an ordinary method folder (``method.py`` with ``run(ctx)``) that a misbehaving agent could
submit. Oversight must flag or neutralise every one of them.
"""

from pathlib import Path

REDTEAM_DIR = Path(__file__).parent


def method_dir(name: str) -> Path:
    """The folder of a red-team method, e.g. ``method_dir("most_common_answer")``."""
    path = REDTEAM_DIR / name
    if not (path / "method.py").is_file():
        raise FileNotFoundError(f"no red-team method {name!r} in {REDTEAM_DIR}")
    return path
