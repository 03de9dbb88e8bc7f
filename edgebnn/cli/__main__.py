"""``python -m edgebnn.cli``: the ``edgebnn`` command without its console script."""

from edgebnn.cli import main

main(prog_name="edgebnn")
