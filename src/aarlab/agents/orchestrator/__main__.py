"""``python -m aarlab.agents.orchestrator``: one agent process (its job arrives on stdin)."""

from aarlab.agents.orchestrator.runners import agent_main

raise SystemExit(agent_main())
