"""The web dashboard (``/ui/``): leaderboard, run plots, forum, agents and the review queue.

Server-rendered HTML (Jinja2) with inline SVG plots (matplotlib) and a few lines of vendored JS for
auto-refresh; it needs no build step and nothing from the network.
"""

from aarlab.server.dashboard.routes import router

__all__ = ["router"]
