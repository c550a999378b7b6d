"""Flower safe by default: ``celery -A worker.app flower`` with no options, in the project
directory, listens on 127.0.0.1 only (not reachable on the machine's other addresses); a
non-loopback address without basic auth is refused in one line; ``--port N`` works as well as
``--port=N``, and a bad option is one line, not a traceback."""

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.harness import Child
from tests.processes import ROOT, free_port

CELERY = [sys.executable, "-m", "celery", "-A", "worker.app", "flower"]


def start(*args: str, **env: str) -> Child:
    flower = Child("flower", env={**os.environ, **env}, cwd=ROOT)
    flower.spawn([*CELERY, *args])
    flower.wait_until(lambda: "Visit me at" in flower.log() or None, 60, "Flower to listen")
    return flower


@pytest.fixture
def flowers() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for flower in started:
        flower.stop()


def listening(pid: int, port: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def other_addresses() -> list[str]:
    """The machine's own addresses that are not loopback (nor IPv6 link-local)."""
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family not in (socket.AF_INET, socket.AF_INET6):
                continue  # a link-layer address
            ip = ipaddress.ip_address(address.address.split("%")[0])
            if not (ip.is_loopback or ip.is_link_local):
                found.append(str(ip))
    return found


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


def test_no_options_listens_on_loopback_only(redis_server: object, flowers: list[Child]) -> None:
    port = free_port()
    flower = start(FLOWER_PORT=str(port))  # the port by environment: no option on the line
    flowers.append(flower)
    assert listening(flower.pid, port) == {"127.0.0.1"}
    assert httpx.get(f"http://127.0.0.1:{port}/healthcheck").text == "OK"
    others = other_addresses()
    for address in others:  # the machine's own addresses: a connection never leaves it
        assert refused(address, port), f"Flower answers on {address}"
    print(f"\nnot reachable on {others or 'no non-loopback address (none here)'}")


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--address=0.0.0.0",), {}), ((), {"FLOWER_ADDRESS": "0.0.0.0"}), (("--address", "::"), {})],
    ids=["option", "environment", "ipv6-any"],
)
def test_a_non_loopback_address_without_auth_is_refused(
    redis_server: object, args: tuple[str, ...], env: dict[str, str]
) -> None:
    port = free_port()
    done = subprocess.run(
        [*CELERY, *args, f"--port={port}"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "without authentication: set FLOWER_BASIC_AUTH" in done.stderr
    assert refused("127.0.0.1", port)


def test_with_basic_auth_it_may_listen_elsewhere(
    redis_server: object, flowers: list[Child]
) -> None:
    port = free_port()
    flower = start("--address=0.0.0.0", f"--port={port}", FLOWER_BASIC_AUTH="ops:s3cret")
    flowers.append(flower)
    assert listening(flower.pid, port) == {"0.0.0.0"}
    assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 401
    assert httpx.get(f"http://127.0.0.1:{port}/", auth=("ops", "s3cret")).status_code == 200


def test_port_with_a_space_works(redis_server: object, flowers: list[Child]) -> None:
    port = free_port()
    flower = start("--port", str(port))
    flowers.append(flower)
    assert listening(flower.pid, port) == {"127.0.0.1"}


def test_a_bad_option_is_one_line(redis_server: object) -> None:
    done = subprocess.run(
        [*CELERY, "--port", "abc"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("vtex-relay: Flower: bad option:"), done.stderr
