"""The W2S testbed a researcher imports: tasks, encoders, the method contract, methods and the pipeline.

This package imports no other aarlab package (see ARCHITECTURE.md): the server, verifier and agents
build on it, never the other way round.
"""
