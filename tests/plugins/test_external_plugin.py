"""A fifth system from a third-party package: built, installed, found through its entry points.

The package is written into a temporary directory: its own ``pyproject.toml``
with a ``custsync.systems`` and a ``custsync.sandbox`` entry point, a tiny
connector, a tiny emulator, and a PEP 517 backend of its own (stdlib only,
so pip builds it offline with ``--no-build-isolation``). pip installs the
wheel into a target directory that only this test's subprocesses see on
their path: the venv and the other test processes (xdist workers, their
subprocesses) never see a fifth system. Then, as a plug-in author would:

- the contract suite, through :func:`worker.testing.contract_test_class`, in
  a pytest subprocess run from a directory that holds only the test module;
- ``custsync sandbox`` serving the registered emulators, the plug-in's among
  them, and writing its config; ``custsync check`` against that config;
- ``custsync --help`` and ``custsync init`` listing the new system.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from connectors import registry
from connectors.registry import GROUP, PluginError
from sandbox.server import free_port
from worker import cli

CUSTSYNC = Path(sys.executable).with_name("custsync")

PYPROJECT = """\
[build-system]
requires = []
build-backend = "books_backend"
backend-path = ["."]

[project]
name = "custsync-books"
version = "0.0.1"
description = "Books, a fifth system for custsync (a test plug-in)."

[project.entry-points."custsync.systems"]
books = "books_plugin.system:SYSTEM"

[project.entry-points."custsync.sandbox"]
books = "books_plugin.emulator:EMULATOR"
"""

# A PEP 517 backend in a few lines: a pure-Python wheel of books_plugin, its entry points from pyproject.toml.
BACKEND = """\
import base64, hashlib, pathlib, tomllib, zipfile

_ROOT = pathlib.Path(__file__).parent


def _project():
    return tomllib.loads((_ROOT / "pyproject.toml").read_text())["project"]


def _files():
    project = _project()
    dist = f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    files = {str(p.relative_to(_ROOT)): p.read_bytes() for p in sorted((_ROOT / "books_plugin").rglob("*.py"))}
    entry_points = "".join(
        f"[{group}]\\n" + "".join(f"{name} = {value}\\n" for name, value in points.items()) + "\\n"
        for group, points in project["entry-points"].items()
    )
    metadata = f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {project['version']}\\n"
    files[f"{dist}/METADATA"] = metadata.encode()
    wheel = "Wheel-Version: 1.0\\nGenerator: books_backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{dist}/WHEEL"] = wheel.encode()
    files[f"{dist}/entry_points.txt"] = entry_points.encode()
    return dist, files


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    name = f"{project['name'].replace('-', '_')}-{project['version']}-py3-none-any.whl"
    dist, files = _files()
    record = []
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        wheel.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
    return name
"""

CONNECTOR = '''\
"""Books: customers with a name, an e-mail, a phone and notes; no archived state, no identity slot."""

from collections.abc import Generator, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from connectors.base import ConnectionSettings, Connector, Listing, TargetSpec
from connectors.model import Customer, clean
from connectors.pagination import SinglePagePaginator


class BooksSettings(ConnectionSettings):
    system: Literal["books"]
    api_key: SecretStr


class _Bearer(httpx.Auth):
    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request


class BooksConnector(Connector):
    system = "books"
    settings_model = BooksSettings
    spec = TargetSpec(fields=frozenset({"email", "phone", "notes"}), archive=False)
    paginator = SinglePagePaginator()
    create_path = "/customers"
    item_path = "/customers/{id}"

    @property
    def tenant(self) -> str:
        return "books"

    def auth(self) -> httpx.Auth:
        assert isinstance(self.settings, BooksSettings)
        return _Bearer(self.settings.api_key.get_secret_value())

    def listings(self) -> Sequence[Listing]:
        return [Listing("/customers")]

    def to_canonical(self, raw: Mapping[str, Any]) -> Customer:
        return Customer(
            kind=raw.get("kind") or "company",
            name=raw["name"],
            email=clean(raw.get("email")),
            phone=clean(raw.get("phone")),
            notes=clean(raw.get("notes")),
        )

    def to_payload(self, customer: Customer, external_id: str, *, create: bool) -> dict[str, Any]:
        return {
            "kind": customer.kind,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "notes": customer.notes,
        }
'''

EMULATOR = '''\
"""An emulator of Books: bearer key, one bare array of customers, create / get / PUT."""

import itertools
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sandbox._core import Emulator
from sandbox.plugin import EmulatorPlugin

SANDBOX_API_KEY = "books_sk_sandbox_0123456789abcdef"


class BooksEmulator(Emulator):
    system = "books"

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/customers", self._list, methods=["GET"]),
            Route("/customers", self._create, methods=["POST"]),
            Route("/customers/{id}", self._get, methods=["GET"]),
            Route("/customers/{id}", self._put, methods=["PUT"]),
            Route("/customers/{id}", self._delete, methods=["DELETE"]),
        ]

    def _refused(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != f"Bearer {SANDBOX_API_KEY}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return None

    def admin_seed(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record = {"id": str(next(self._ids)), "kind": "company", "email": None, "phone": None, "notes": None}
        record.update({k: v for k, v in payload.items() if k in {"kind", "name", "email", "phone", "notes"}})
        self.records[record["id"]] = record
        return record

    def seed_fake(self, count: int, seed: int = 7, **_: Any) -> list[dict[str, Any]]:
        start = len(self.records)
        return [
            self.admin_seed({"name": f"Fake Books {n}", "email": f"fake{n}@books.example"})
            for n in range(start, start + count)
        ]

    async def _list(self, request: Request) -> Response:
        return self._refused(request) or JSONResponse(list(self.records.values()))

    async def _create(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = await request.json()
        if not body.get("name"):
            return JSONResponse({"error": "name is required"}, status_code=422)
        record = self.admin_seed(body)
        self.count_write()
        return JSONResponse(record, status_code=201)

    async def _get(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        record = self.records.get(request.path_params["id"])
        return JSONResponse(record) if record else JSONResponse({"error": "not found"}, status_code=404)

    async def _put(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        record = self.records.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        body = await request.json()
        record.update({k: v for k, v in body.items() if k in {"kind", "name", "email", "phone", "notes"}})
        self.count_write()
        return JSONResponse(record)

    async def _delete(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if self.records.pop(request.path_params["id"], None) is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return Response(status_code=204)


EMULATOR = EmulatorPlugin(
    name="books",
    factory=BooksEmulator,
    connection=lambda base: {"system": "books", "base_url": base, "api_key": SANDBOX_API_KEY},
)
'''

SYSTEM = """\
from books_plugin.connector import BooksConnector
from connectors.model import Customer
from connectors.plugin import DemoEdit, System

SYSTEM = System(
    name="books",
    title="Books",
    connector=BooksConnector,
    customer=Customer(
        kind="company", name="Ñandú Books Ltd", email="ap@nandu.example", phone="+1 512 555 0100", notes="Net 30 ✉"
    ),
    edited=Customer(
        kind="individual", name="Renée Dubois", email="renee@dubois.example", phone="+33 1 23 45 67 89", notes="Monthly"
    ),
    demo_edit=DemoEdit("phone"),
)
"""

CONTRACT_TESTS = """\
import books_plugin
from worker.testing import contract_test_class

TestBooksContract = contract_test_class("books")


def test_the_plugin_comes_from_its_installed_wheel():
    assert "site" in books_plugin.__file__, books_plugin.__file__
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plug-in, built by pip from its own pyproject and installed into a directory of its own."""
    root = tmp_path_factory.mktemp("plugin")
    source = root / "books"
    _write(
        source,
        {
            "pyproject.toml": PYPROJECT,
            "books_backend.py": BACKEND,
            "books_plugin/__init__.py": "",
            "books_plugin/connector.py": CONNECTOR,
            "books_plugin/emulator.py": EMULATOR,
            "books_plugin/system.py": SYSTEM,
        },
    )
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [*pip, "--target", str(target), str(source)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "custsync_books-0.0.1.dist-info" / "entry_points.txt").is_file()
    return target


def _env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTSYNC_", "PYTEST_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "200"
    return env


def _custsync(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CUSTSYNC), *args], cwd=cwd, env=_env(site), capture_output=True, text=True, timeout=60, check=False
    )


def test_given_an_installed_plugin_when_its_contract_suite_runs_then_it_passes(site: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"  # only the test module: the plug-in can come from nowhere but its installed wheel
    _write(run, {"test_books_contract.py": CONTRACT_TESTS})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "test_books_contract.py"],
        cwd=run,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary
    assert "failed" not in summary
    assert "skipped" not in summary
    assert int(summary.split(" passed")[0].split()[-1]) > 40, summary  # the whole contract, not a stub


@pytest.fixture
def served(site: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``custsync sandbox`` on loopback (with the plug-in's emulator), and the config it wrote."""
    port = free_port()
    config = tmp_path / "sandbox.toml"
    args = [str(CUSTSYNC), "sandbox", "--port", str(port), "--write-config", str(config)]
    process = subprocess.Popen(args, cwd=tmp_path, env=_env(site), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1].decode()
            try:
                if httpx.get(f"{url}/books/_admin/customers", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)
        yield url, config
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
        assert "/books (Ctrl-C to stop)" in stderr.decode(), stderr.decode()


def test_given_an_installed_plugin_when_the_sandbox_serves_it_then_custsync_check_passes(
    site: Path, served: tuple[str, Path], tmp_path: Path
) -> None:
    _url, config = served
    text = config.read_text(encoding="utf-8")
    assert "[connections.books]" in text
    assert "[pipelines.books_to_thredfi]" in text
    assert "[pipelines.thredfi_to_books]" in text

    done = _custsync(site, "check", "--config", str(config), cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "books (books): ok" in done.stdout
    assert "thredfi (thredfi): ok" in done.stdout  # the four of custsync itself are still there
    assert "(5 connections, 20 pipelines)" in done.stdout


LISTINGS = """\
import json, sys
from typer.testing import CliRunner
from worker import cli

def invoke(*args):
    result = CliRunner().invoke(cli.app, list(args))
    return {"code": result.exit_code, "out": result.output}

print(json.dumps({
    "help": invoke("--help"),
    "init_help": invoke("init", "--help"),
    "init": invoke("init", "--systems", "books,thredfi", "--path", sys.argv[1]),
    "unknown": invoke("init", "--systems", "nothing", "--path", sys.argv[1] + ".other"),
}))
"""


def test_given_an_installed_plugin_when_listing_systems_then_it_is_named(site: Path, tmp_path: Path) -> None:
    # One interpreter for the four commands (each custsync start costs seconds).
    path = tmp_path / "c.toml"
    done = subprocess.run(
        [sys.executable, "-c", LISTINGS, str(path)],
        cwd=tmp_path,
        env=_env(site),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])

    assert got["help"]["code"] == 0, got["help"]
    assert "Bigcapital, Thredfi, Piriod, Timbrix and Books" in " ".join(got["help"]["out"].split())
    assert "local emulators of the five APIs" in " ".join(got["help"]["out"].split())
    assert "timbrix, books" in " ".join(got["init_help"]["out"].split())
    assert got["init"]["code"] == 0, got["init"]
    config = path.read_text(encoding="utf-8")
    assert '[connections.books]\nsystem = "books"' in config
    assert "[pipelines.books_to_thredfi]" in config
    assert "[pipelines.thredfi_to_books]" in config
    assert got["unknown"]["code"] == 2
    assert "one of bigcapital, thredfi, piriod, timbrix, books" in got["unknown"]["out"]


# -- a broken plug-in (in process: the registry reads a fake entry point) -------------------------------


@pytest.fixture
def broken_entry_point(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One more ``custsync.systems`` entry point, pointing at a module that does not exist."""
    real = entry_points

    def with_broken(*, group: str) -> list[EntryPoint]:
        found = list(real(group=group))
        return [*found, EntryPoint("broken", "broken_plugin_missing.system:SYSTEM", group)] if group == GROUP else found

    monkeypatch.setattr(registry, "entry_points", with_broken)
    registry.reload()
    yield
    monkeypatch.undo()
    registry.reload()


@pytest.mark.usefixtures("broken_entry_point")
def test_given_a_broken_plugin_when_custsync_meets_it_then_one_line_names_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[connections.books]\nsystem = "books"\nbase_url = "http://127.0.0.1:9"\n', encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["custsync", "check", "--config", str(config)])
    monkeypatch.setattr(cli, "err", Console(file=sys.stderr, width=500))

    with pytest.raises(PluginError) as caught:
        registry.systems()
    with pytest.raises(SystemExit) as exited:
        cli.main()

    assert exited.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"error: {caught.value}"]
    assert "'broken'" in lines[0]
    assert "custsync.systems: broken_plugin_missing.system:SYSTEM" in lines[0]
    assert "ModuleNotFoundError" in lines[0]


def test_given_two_plugins_of_one_name_when_loaded_then_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = entry_points

    def doubled(*, group: str) -> list[EntryPoint]:
        found = list(real(group=group))
        return [*found, EntryPoint("thredfi", "connectors.systems.thredfi:SYSTEM", group)] if group == GROUP else found

    monkeypatch.setattr(registry, "entry_points", doubled)
    registry.reload()
    try:
        with pytest.raises(PluginError, match=r"'thredfi'.*already declared"):
            registry.systems()
    finally:
        monkeypatch.undo()
        registry.reload()
    assert "thredfi" in registry.systems()
