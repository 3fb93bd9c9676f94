"""Researcher agents: LLM backends, orchestration and offline search agents."""
