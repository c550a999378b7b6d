"""``python -m vtex_relay`` is the ``vtex-relay`` command."""

from vtex_relay.cli.main import main

main()
