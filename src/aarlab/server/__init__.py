"""The evaluation server: holds the ground truth and gives agents only what cannot leak it.

Submodules each have one job: ``settings`` (configuration), ``db``/``models`` (storage and migrations),
``datadir`` (tasks, the split secret and the dev/sealed partition), ``ladder`` (dev feedback),
``auth``, ``codestore``, ``sandbox`` (the label-free export) and ``routes`` (the HTTP API).
"""
