"""The in-process lab: the one place that composes the server, the orchestrator and verification.

* :mod:`.server` — :class:`~aarlab.lab.server.LocalServer`, the evaluation server in this process;
* :mod:`.verification` — the server's job loop in a worker process or a thread while agents work;
* :mod:`.research` — :func:`~aarlab.lab.research.run_research`, a whole research run;
* :mod:`.remote` — the same run against a running server, over its API only;
* :mod:`.demo` — ``aarlab demo``: researchers, a red-team agent, verification and the transfer gate.

It may import every package below it (server, agents, verify, ...); only the CLI imports it.
"""
