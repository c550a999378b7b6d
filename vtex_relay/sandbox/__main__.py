"""``python -m vtex_relay.sandbox [OPTIONS]``: run the sandbox, as ``vtex-relay sandbox`` does."""

from vtex_relay.sandbox.command import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m vtex_relay.sandbox")
