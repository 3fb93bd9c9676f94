"""``python -m aarlab.cli``: the ``aarlab`` command line."""

from aarlab.cli import main

main()
