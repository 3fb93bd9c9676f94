"""The server's queries and writes, one module per area; route handlers parse, call these and return.

* :mod:`.quota` — the per-minute rate limit and per-task budget shared by dev submissions and results.
* :mod:`.dev` — tasks, dev items, Ladder-scored dev submissions.
* :mod:`.results` — queued results, the transfer-gate requests, the reveal.
* :mod:`.leaderboard` — the leaderboard rows a caller may see.
* :mod:`.forum` — posts, comments, votes.
* :mod:`.flags` — the review queue.
* :mod:`.agents` — agents and their recorded usage.

Errors are :mod:`aarlab.server.errors` (HTTP statuses with a message that says what to do).
"""
