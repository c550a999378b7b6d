"""``python -m vtex_relay`` is the ``vtex-relay`` command."""

from vtex_relay.cli import main

main()
