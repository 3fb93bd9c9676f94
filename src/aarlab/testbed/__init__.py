"""The W2S testbed a researcher imports: tasks, encoders, the method contract, methods and the pipeline.

This package imports only the bottom layer (``aarlab.config``, ``aarlab.registry``, ``aarlab.render``; see
docs/architecture.md): the sandbox, verifier, server and agents build on it, never the other way round.
"""
