"""Shared fixtures: a fresh database on each backend (SQLite file, real PostgreSQL) and one Prefect test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_up() -> bool:
    import psycopg

    try:
        psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3).close()
    except psycopg.OperationalError:
        return False
    return True


def ensure_postgres() -> None:
    """Start the local PostgreSQL cluster if it is down."""
    if _pg_up():
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not shutil.which("pg_ctlcluster"):
        pytest.fail("PostgreSQL is not installed here; .ci/run installs it")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
    for _ in range(30):
        if _pg_up():
            return
        time.sleep(1)
    pytest.fail("PostgreSQL did not start on 127.0.0.1:5432")


def _fresh_pg_database(template: str | None = None) -> str:
    """A new, empty PostgreSQL database; with `template`, a copy of that (migrated) database."""
    import psycopg

    ensure_postgres()
    name = f"ltc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated record per backend for the whole session (each test worker's), which every test's record is
    copied from: a SQLite file, and a PostgreSQL database used as the template of each test's database."""
    from storage.db import get_engine, upgrade

    folder = tmp_path_factory.mktemp("migrated")
    sqlite_file = folder / "ltc.db"
    upgrade(f"sqlite:///{sqlite_file}")
    get_engine(f"sqlite:///{sqlite_file}").dispose()
    template = _fresh_pg_database()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{template}"
    upgrade(url)
    get_engine(url).dispose()  # a template database takes no connections while it is copied
    yield {"sqlite": str(sqlite_file), "postgresql": template}
    _drop_pg_database(template)


class SpareDatabases:
    """Copies of the migrated template made one ahead, on a thread of their own, while the test before runs: a copy
    takes PostgreSQL 0.2-0.4 s that no test need wait for. Each copy is taken by one test only."""

    def __init__(self, template: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.template = template
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spare-database")
        self._next = self._pool.submit(_fresh_pg_database, template)

    def take(self) -> str:
        name = self._next.result()
        self._next = self._pool.submit(_fresh_pg_database, self.template)
        return name

    def close(self) -> None:
        _drop_pg_database(self._next.result())
        self._pool.shutdown()


@pytest.fixture(scope="session")
def spare_databases(migrated: dict[str, str]) -> Iterator[SpareDatabases]:
    """The session's spare PostgreSQL copies of the migrated record (made only if a test asks for one)."""
    spares = SpareDatabases(migrated["postgresql"])
    yield spares
    spares.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated: dict[str, str]
) -> Iterator[str]:
    """An empty, migrated record on each backend, with LTC_HOME in a temporary folder: a copy of the session's
    migrated record (`migrated`), as `storage.db.upgrade` leaves a new one."""
    from storage.db import get_engine

    home = tmp_path / "home"
    monkeypatch.setenv("LTC_HOME", str(home))
    pg_name = None
    if request.param == "sqlite":
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated["sqlite"], home / "ltc.db")
        url = f"sqlite:///{home / 'ltc.db'}"
    else:
        pg_name = request.getfixturevalue("spare_databases").take()
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{pg_name}"
    monkeypatch.setenv("LTC_DATABASE_URL", url)
    yield request.param
    get_engine(url).dispose()
    if pg_name:
        _drop_pg_database(pg_name)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RealPrefectServer:
    """`prefect server start` as an operator runs it: its own process, its own PostgreSQL database."""

    def __init__(self, url: str, log: Path, env: dict[str, str]) -> None:
        self.url, self.log, self.env = url, log, env

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


# Services the session's test server does without: nothing in the suite is scheduled, late, zombie or automated
# on it (tests/test_server_stack.py runs a server with every service).
QUIET_SERVICES = (
    "SCHEDULER",
    "LATE_RUNS",
    "FOREMAN",
    "CANCELLATION_CLEANUP",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "DB_VACUUM",
    "TRIGGERS",
    "EVENT_LOGGER",
)


class StartingPrefectServer:
    """`prefect server start` on a free loopback port, backed by a fresh PostgreSQL database of its own, started
    and not yet waited for: `ready()` waits until it answers, `stop()` stops it and drops its database."""

    def __init__(self, home: Path, extra: dict[str, str] | None = None) -> None:
        import sys

        self.db = _fresh_pg_database()
        port = free_port()
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.db}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_SERVER_LOGGING_LEVEL": "INFO",
            **(extra or {}),
        }
        self.env.pop("PREFECT_API_URL", None)
        self.home, self.log = home, home / "server.log"
        prefect_cli = str(Path(sys.executable).parent / "prefect")
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [prefect_cli, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{port}/api"

    def ready(self) -> RealPrefectServer:
        import urllib.request

        for _ in range(360):
            if self.proc.poll() is not None:
                pytest.fail(f"prefect server start exited: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prefect server start did not answer within 180 s")
        client_env = {k: v for k, v in self.env.items() if k != "PREFECT_API_DATABASE_CONNECTION_URL"}
        client_env["PREFECT_API_URL"] = self.url
        client_env["PREFECT_HOME"] = str(self.home.parent / f"{self.home.name}-client")
        return RealPrefectServer(self.url, self.log, client_env)

    def stop(self) -> None:
        stop_process_group(self.proc)
        _drop_pg_database(self.db)


@contextmanager
def prefect_server_process(home: Path, extra: dict[str, str] | None = None) -> Iterator[RealPrefectServer]:
    """`prefect server start` on a free loopback port, backed by a fresh PostgreSQL database of its own; stopped and
    its database dropped on exit."""
    server = StartingPrefectServer(home, extra)
    try:
        yield server.ready()
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _session_prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartingPrefectServer]:
    """The test worker's Prefect server, started when its first test begins and not waited for: the tests before
    the first that needs it (`prefect_server`) run while it starts."""
    quiet = {f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in QUIET_SERVICES}
    server = StartingPrefectServer(tmp_path_factory.mktemp("prefect-test-server"), quiet)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_server(_session_prefect_server: StartingPrefectServer) -> Iterator[RealPrefectServer]:
    """One Prefect server per test worker for the whole session: `prefect server start` on PostgreSQL (Prefect's
    SQLite-backed test harness spends most of a flow run waiting on its database's lock). Flows run in the test's
    own process against it, as `ltc run` runs them against its local server: without heartbeats, whose thread
    Prefect joins for up to a second at the end of every flow run (tests/test_server_stack.py and
    test_deployments.py run served flows with Prefect's default heartbeats)."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    server = _session_prefect_server.ready()
    updates = {PREFECT_API_URL: server.url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    # Threads a test starts (a payment run waiting for approval) see the same settings, as under Prefect's own
    # test harness.
    with temporary_settings(updates=updates), _temporary_global_settings_context(get_settings_context()):
        try:
            yield server
        finally:
            _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Send what Prefect's log and event workers still hold before their server stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=10)
        except Exception:
            pass


@pytest.fixture
def real_prefect_server(tmp_path: Path) -> Iterator[RealPrefectServer]:
    """A real Prefect server (`prefect server start`) on a free loopback port, backed by a fresh PostgreSQL
    database, with its default services (the scheduler among them)."""
    with prefect_server_process(tmp_path / "prefect-server") as server:
        yield server


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process started with start_new_session=True and everything it started."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
