"""``python -m dispatcher.cli``: the ``mycpaas`` command, as the platform's own processes start
their children (dev mode, the benchmark's ``--spawn``)."""

from dispatcher.cli.main import main

main()
