"""The wheel: what it holds, what it requires, and that it runs installed in a venv of its own.

How this stays offline and reliable in CI:

- The wheel is built from a copy of the source tree (setuptools' ``build/`` would otherwise
  be left in the repository, and can carry deleted modules into the next wheel) with
  ``pip wheel --no-deps --no-build-isolation --no-index``: the build uses the setuptools of the
  test venv (the ``dev`` extra pins it), so nothing is downloaded.
- "A clean venv" is a new venv, without pip or anything else, into which only the wheel is
  installed (``--no-index --no-deps``). Installing its dependencies there would take PyPI and
  a minute; instead the venv reaches the dependencies already in the test venv through a
  ``.pth`` file naming a directory of links to them, from which the distributions the extras
  bring in (aiohttp, jsonschema, Flower, honcho) and the editable vtex-relay itself are left
  out. So the installed package runs from the wheel's files, with the worker's dependencies and
  without the extras' ones: really absent, not mocked. A worker started from that venv then
  delivers to the sandbox (run from the test venv) what that venv's ``vtex-relay`` enqueued.

That an installation from PyPI resolves (``pip install vtex-relay-*.whl`` in a venv with
network) is not checked here: it depends on the network, not on this repository.
"""

import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.processes import wait_for
from vtex_relay.cli.main import cli
from vtex_relay.sandbox import SandboxControl

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("config", "worker", "tasks", "vtex_relay")
EXTRAS = {
    "sandbox": {"aiohttp", "jsonschema"},
    "flower": {"flower"},
    "intake": {"aiohttp", "uvloop"},
    "run": {"honcho"},
}
# The only modules that may import what an extra brings (each command loads them lazily).
NEEDS_AN_EXTRA = ("vtex_relay.sandbox", "vtex_relay.intake", "vtex_relay.cli.serve")
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
NOT_FOR_WORKERS = {name for names in EXTRAS.values() for name in names}
# What a copy of the tree leaves out: local state, caches and earlier builds.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", ".run", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the repository as it is now."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE, symlinks=True)
    dist = tmp / "dist"
    build: list[str | Path] = [
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        dist,
        source,
    ]
    result = subprocess.run([*PIP, *build], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    [built] = dist.glob("vtex_relay-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the wheel, its dependencies reachable but not the extras'."""
    tmp = tmp_path_factory.mktemp("venv")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    install: list[str | Path] = [
        "--python",
        python,
        "install",
        "-q",
        "--no-index",
        "--no-deps",
        wheel,
    ]
    subprocess.run([*PIP, *install], check=True)
    dependencies = tmp / "dependencies"
    dependencies.mkdir()
    left_out = _top_level_entries({*NOT_FOR_WORKERS, "vtex-relay"})
    for site_packages in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}:
        for entry in Path(site_packages).iterdir():
            if entry.name not in left_out and not (dependencies / entry.name).exists():
                (dependencies / entry.name).symlink_to(entry)
    target = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(target) / "test-dependencies.pth").write_text(f"{dependencies}\n")
    return venv


def _top_level_entries(distributions: set[str]) -> set[str]:
    """The names in site-packages that belong to *distributions* (packages, .pth, dist-info)."""
    names: set[str] = set()
    for name in distributions:
        files = importlib.metadata.distribution(name).files or []
        names.update(Path(file).parts[0] for file in files if not str(file).startswith(".."))
    return names


def _env() -> dict[str, str]:
    """The test settings (conftest.py), without PYTHONPATH and the like."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv / "bin" / args[0], *args[1:]],
        cwd=venv,  # not the repository: nothing may come from the source tree
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _sources(package: str, pattern: str) -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / package).rglob(pattern)
        if "__pycache__" not in path.parts
    }


class TestWheelContents:
    def test_it_holds_every_module_and_data_file_and_nothing_else(self, wheel: Path) -> None:
        names = set(zipfile.ZipFile(wheel).namelist())
        for package in PACKAGES:
            assert _sources(package, "*.py") <= names, f"modules of {package} missing"
        lua = _sources("vtex_relay", "lua/*.lua")
        assert lua, "no Lua script in the source tree?"
        assert lua <= names
        schemas = _sources("vtex_relay", "sandbox/*.json")
        assert "vtex_relay/sandbox/oms-request-schemas.json" in schemas
        assert schemas <= names
        assert "vtex_relay/py.typed" in names
        top_level = {name.split("/")[0] for name in names}
        dist_info = {name for name in top_level if name.endswith(".dist-info")}
        assert top_level - dist_info == set(PACKAGES)  # no tests/, bench/, scripts/

    def test_extras_requirements_are_not_the_workers(self, wheel: Path) -> None:
        with zipfile.ZipFile(wheel) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            metadata = email.parser.Parser().parsestr(archive.read(name).decode())
        requires = metadata.get_all("Requires-Dist") or []
        always = {_name(r) for r in requires if "extra ==" not in r}
        assert {"celery", "kombu", "redis", "httpx", "pydantic", "pydantic-settings", "click"} <= (
            always
        )
        assert not always & NOT_FOR_WORKERS
        assert {"sandbox", "flower", "run", "dev"} <= set(metadata.get_all("Provides-Extra") or [])
        for extra, names in EXTRAS.items():
            given = {_name(r) for r in requires if re.search(rf"extra == ['\"]{extra}['\"]", r)}
            assert names <= given, extra


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return match.group().lower().replace("_", "-")


class TestInstalledWheel:
    def test_help_lists_every_command(self, venv: Path) -> None:
        result = _run(venv, "vtex-relay", "--help")
        assert result.returncode == 0, result.stderr
        commands = result.stdout.split("Commands:")[1]
        for command in ("enqueue", "dlq", "order", "sandbox"):
            assert re.search(rf"^\s+{command}\s", commands, re.MULTILINE), result.stdout
        assert "pip install 'vtex-relay[sandbox]'" in commands  # the sandbox: not installed
        assert "pip install 'vtex-relay[intake]'" in commands  # nor the intake

    def test_every_module_but_the_sandbox_imports_without_the_extras(self, venv: Path) -> None:
        code = (
            "import importlib, importlib.util, pkgutil\n"
            f"print([n for n in {sorted(NOT_FOR_WORKERS)!r} if importlib.util.find_spec(n)])\n"
            f"for name in {PACKAGES!r}:\n"
            "    package = importlib.import_module(name)\n"
            "    print(package.__file__)\n"
            "    for module in pkgutil.walk_packages(package.__path__, name + '.'):\n"
            f"        if not module.name.startswith({NEEDS_AN_EXTRA!r})"
            " and not module.name.endswith('__main__'):\n"
            "            importlib.import_module(module.name)\n"
        )
        result = _run(venv, "python", "-c", code)
        assert result.returncode == 0, result.stderr
        extras_found, *files = result.stdout.splitlines()
        assert extras_found == "[]"  # really absent in this venv
        assert all(Path(file).is_relative_to(venv) for file in files), files  # from the wheel

    def test_sandbox_without_its_extra_says_how_to_install_it(self, venv: Path) -> None:
        for args in (["--port", "0"], ["--help"]):
            result = _run(venv, "vtex-relay", "sandbox", *args)
            assert result.returncode == 2
            assert result.stdout == ""
            assert result.stderr == (
                "vtex-relay: the sandbox command needs aiohttp, which is not installed: "
                "pip install 'vtex-relay[sandbox]'\n"
            )

    def test_serve_without_its_extra_says_how_to_install_it(self, venv: Path) -> None:
        result = _run(venv, "vtex-relay", "serve", "--port", "0")
        assert result.returncode == 2
        assert result.stderr == (
            "vtex-relay: the serve command needs aiohttp, which is not installed: "
            "pip install 'vtex-relay[intake]'\n"
        )

    @pytest.mark.integration
    @pytest.mark.usefixtures("redis_client")
    def test_its_worker_delivers_what_its_cli_enqueues(
        self, venv: Path, sandbox: SandboxControl, tmp_path: Path
    ) -> None:
        """A worker and a producer need no extra: both run from this venv (test Redis, sandbox)."""
        log = tmp_path / "worker.log"
        worker = (
            "-m celery -A worker.app worker -P threads --without-gossip --without-mingle -l INFO"
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [venv / "bin" / "python", *worker.split()],
                cwd=venv,
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:

            def ready() -> bool:
                assert process.poll() is None, log.read_text(errors="replace")
                return " ready." in log.read_text(errors="replace")

            wait_for(ready, timeout=30, what=lambda: log.read_text(errors="replace"))
            invoice = str(ROOT / "examples" / "invoice.json")
            result = _run(venv, "vtex-relay", "enqueue", "invoice", "wheel-order-01", invoice)
            assert result.returncode == 0, result.stderr
            [post] = sandbox.wait_for(
                lambda control: control.requests(order_id="wheel-order-01", method="POST"),
                timeout=20,
            )
            assert post.status == 200, post
        finally:
            process.terminate()
            process.wait(timeout=15)


@pytest.fixture
def without_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp not importable in this process; the sandbox modules imported again."""
    for name in [n for n in sys.modules if n.startswith("vtex_relay.sandbox")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # None: import fails, ModuleNotFoundError


@pytest.mark.usefixtures("without_aiohttp")
def test_the_clear_message_in_process() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr == (
        "vtex-relay: the sandbox command needs aiohttp, which is not installed: "
        "pip install 'vtex-relay[sandbox]'\n"
    )
    listing = CliRunner().invoke(cli, ["--help"])
    assert listing.exit_code == 0
    assert "Not installed: pip install 'vtex-relay[sandbox]'." in listing.stdout
