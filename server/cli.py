"""The `sunbid` command: serve, tokens, verify, rebuild, migrate, backup and restore."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn

from push.channels.senders import configured as configured_channels
from push.copy import copy_push_rows
from push.queue import QUEUE_FILE, PushQueue
from push.record import PushRecord
from push.settings import PushSettings
from push.vapid import VapidKeyError, load_or_create_key
from push.webhooks.record import WebhookRecord
from push.webhooks.store import WEBHOOKS_FILE, WebhookStore
from server.app import open_respond
from server.auth import ROLES, digest, new_token
from server.backup import BackupError
from server.backup.files import is_postgres, log_path
from server.backup.make import TargetNotEmpty, make_backup
from server.backup.restore import restore_backup
from server.compliance.derived import ComplianceRecord
from server.compliance.records import WARNINGS_FILE
from server.core import pg
from server.core.clock import Clock
from server.core.datafile import DataFileError
from server.core.logs import configure_logging, uvicorn_log_config
from server.core.projection import DerivedRecord
from server.core.topics import CODE
from server.datalock import DataDirBusy, lock_data_dir, unlock_data_dir
from server.domain import Domain, DomainFileError
from server.http_protocol import fit_open_files, protocol_class
from server.migrations import MigrationError
from server.migrations import postgres as pg_migrations
from server.migrations.run import DataFiles, migrate, read_versions, refusal
from server.projects import open_projects
from server.respond.cases import CASES_FILE
from server.respond.copy import copy_case_rows
from server.respond.derived import RespondRecord
from server.settings import Settings, SettingsError
from server.stats import open_stats
from server.store import AlreadyExists, EventStore, StoreUnavailable, open_store
from server.store.copy_to import CopyRefused, check_copy, copy_log
from server.store.postgres import PostgresStore
from server.store.sqlite import SQLiteStore
from server.tokens import tokens_of


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sunbid", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API, streams and app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on the port (needs PostgreSQL and Redis to share)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="serve only: push, compliance timers and pruning run in `sunbid worker`",
    )
    serve.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # a socket from --workers
    commands.add_parser(
        "worker",
        help="run the background work (push, compliance timers, pruning) without serving HTTP",
    )

    token = commands.add_parser("token", help="staff tokens").add_subparsers(
        dest="action", required=True
    )
    create = token.add_parser("create", help="issue a token; printed once, on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--agency", help="the agency code a publisher publishes for")
    token.add_parser("list", help="list tokens (names and roles, never the tokens)")
    revoke = token.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")

    commands.add_parser(
        "verify", help="re-compute the log's hash chain; check every derived record against it"
    )
    commands.add_parser(
        "rebuild", help="recompute every derived record from the log (server stopped)"
    )
    commands.add_parser(
        "migrate", help="bring a data directory written by an older version up to date"
    )

    copy_to = commands.add_parser(
        "copy-to",
        help="copy the SQLite log (events, tokens, keys) into an empty PostgreSQL schema; verified",
    )
    copy_to.add_argument("url", help="postgresql://user@host/db")
    copy_to.add_argument("--schema", default="public", help="the schema to fill (default public)")

    backup = commands.add_parser(
        "backup", help="copy all data into PATH, consistently, while the server runs; verified"
    )
    backup.add_argument("path", type=Path, help="a new or empty directory")
    restore = commands.add_parser(
        "restore", help="check the backup in PATH and put it in place (server stopped)"
    )
    restore.add_argument("path", type=Path, help="a directory written by `sunbid backup`")

    vapid = commands.add_parser("vapid", help="the Web Push (VAPID) key").add_subparsers(
        dest="action", required=True
    )
    vapid.add_parser("show", help="print the public applicationServerKey")

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        PushSettings.from_env()  # checked before anything starts, like the server's
        configured_channels(os.environ)  # SMS, e-mail, WeChat: their senders open nothing yet
    except SettingsError as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        if args.no_worker:
            settings = dataclasses.replace(settings, background=False)
        if args.workers != 1:
            return _serve_workers(settings, args)
        return serve_forever(settings, args.host, args.port, fd=args.fd)
    if args.command == "worker":
        return _worker(settings)
    if args.command == "verify":
        return _with_store(settings, lambda store: _verify(settings, store))
    if args.command in ("rebuild", "migrate"):
        return _stopped(settings, args.command)
    if args.command == "copy-to":
        return _copy_to(settings, args.url, args.schema)
    if args.command == "backup":
        return _backup(settings, args.path)
    if args.command == "restore":
        return _restore(settings, args.path)
    if args.command == "vapid":
        return asyncio.run(_vapid_show(settings))
    handlers: dict[str, Callable[[EventStore], Awaitable[int]]] = {
        "create": lambda store: _token_create(store, args.name, args.role, args.agency),
        "list": _token_list,
        "revoke": lambda store: _token_revoke(store, args.name),
    }
    return _with_store(settings, handlers[args.action])


class _Server(uvicorn.Server):
    """uvicorn, but streaming clients hear 1001 "going away" before it stops."""

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.loaded_app
        while hasattr(app, "app") and not hasattr(app, "close_streams"):
            app = app.app  # unwrap uvicorn's middleware
        if hasattr(app, "close_streams"):
            await app.close_streams()
        await super().shutdown(sockets)


class _NoConnectionLines(logging.Filter):
    """Drop the lines uvicorn and websockets log for every WebSocket: 10,000
    phones reconnecting after a deploy would write 20,000 of them (HTTP
    access lines are off too)."""

    PER_CONNECTION = frozenset(
        {'%s - "WebSocket %s" [accepted]', "connection open", "connection closed"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.PER_CONNECTION


def shareable(settings: Settings) -> str | None:
    """Why several processes cannot share this deployment; None if they can."""
    database = settings.database_url.partition(":")[0]
    bus = settings.bus_url.partition(":")[0]
    if is_postgres(settings.database_url) and bus == "redis":
        return None
    return (
        "several processes need a database and a bus they can all share:"
        " SUNBID_DATABASE_URL=postgresql://… and SUNBID_BUS_URL=redis://…"
        f" (this deployment has {database} and {bus}: one process serves it all)"
    )


def _serve_workers(settings: Settings, args: argparse.Namespace) -> int:
    if args.workers < 1:
        print("sunbid: --workers must be at least 1", file=sys.stderr)
        return 2
    refused = shareable(settings)
    if refused is not None:
        print(f"sunbid: --workers {args.workers}: {refused}", file=sys.stderr)
        return 2
    from server.supervisor import serve_workers

    configure_logging(settings.log_format)
    return serve_workers(
        args.host, args.port, args.workers, ["--no-worker"] if args.no_worker else []
    )


def _worker(settings: Settings) -> int:
    refused = shareable(settings)
    if refused is not None:
        print(f"sunbid worker: {refused}", file=sys.stderr)
        return 2
    from server.background import run_background

    configure_logging(settings.log_format)
    lock = lock_data_dir(settings.data_dir, "sunbid worker", shared=True)
    try:
        problem = asyncio.run(_schema_refusal(settings))
        if problem is not None:
            print(f"sunbid: {problem}", file=sys.stderr)
            return 2
        return asyncio.run(run_background(settings))
    finally:
        unlock_data_dir(lock)


def serve_forever(settings: Settings, host: str, port: int, *, fd: int | None = None) -> int:
    configure_logging(settings.log_format)
    try:
        # Held until this process exits: one server per SQLite log, and
        # `sunbid restore` can tell that one runs.
        shared = is_postgres(settings.database_url)
        lock = lock_data_dir(settings.data_dir, "sunbid serve", shared=shared)
    except DataDirBusy as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 1
    try:
        found = asyncio.run(read_versions(data_files(settings)))
        problem = refusal(found, settings.data_dir) or asyncio.run(_schema_refusal(settings))
        if problem is not None:
            print(f"sunbid: {problem}", file=sys.stderr)
            return 2
        return _serve(settings, host, port, fd)
    finally:
        unlock_data_dir(lock)


def data_files(settings: Settings) -> DataFiles:
    """The files `sunbid migrate` upgrades (the log only where it is SQLite)."""
    return {
        "events": log_path(settings.database_url),
        "push": settings.data_dir / QUEUE_FILE,
        "compliance": settings.data_dir / WARNINGS_FILE,
        "respond": settings.data_dir / CASES_FILE,
        "webhooks": settings.data_dir / WEBHOOKS_FILE,
    }


def _serve(settings: Settings, host: str, port: int, fd: int | None = None) -> int:
    from server.app import create_app

    try:
        app = create_app(settings)
    except (DomainFileError, DataFileError) as exc:
        if settings.log_format == "json":
            logging.getLogger("sunbid").critical("%s", exc)
        else:
            print(f"sunbid: {exc}", file=sys.stderr)  # names the file, entry and field
        return 2
    max_connections = fit_open_files(settings.max_connections)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        fd=fd,  # from `serve --workers N`, which bound the port once for all
        http=protocol_class(settings.http_header_timeout, max_connections),
        # The client address per-address limits count: X-Forwarded-For's,
        # but only when the peer is one of these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_keep_alive=settings.http_keepalive_seconds,
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # a compressed frame cannot be shared
        ws_max_size=settings.max_frame_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_interval,
        timeout_graceful_shutdown=3,  # after streams were told to go (cli._Server)
        access_log=False,
        lifespan="on",
        log_config=uvicorn_log_config(settings.log_format),
    )
    logging.getLogger("uvicorn.error").addFilter(
        _NoConnectionLines()
    )  # after Config set up logging
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    command = sys.argv[0] if sys.argv[0].endswith("sunbid") else "sunbid"
    banner = (
        f"Sunbid: open http://{shown}:{port}/ — data in {settings.data_dir}\n"
        f"Staff token: {command} token create --name NAME --role admin"
    )
    if settings.log_format == "json":
        logging.getLogger("sunbid").info(banner)  # a log pipeline reads only JSON lines
    elif fd is None:  # with --workers, the supervisor has said where once
        print(banner, flush=True)
    _Server(config).run()
    return 0


def _with_store(settings: Settings, action: Callable[[EventStore], Awaitable[int]]) -> int:
    async def run() -> int:
        store = open_store(
            settings.database_url,
            Clock(settings.timezone),
            synchronous=settings.sqlite_synchronous,
            schema=settings.database_schema,
        )
        try:
            await store.open()
            return await action(store)
        except StoreUnavailable as exc:
            print(f"sunbid: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.close()

    return asyncio.run(run())


async def _token_create(store: EventStore, name: str, role: str, agency: str | None) -> int:
    if not CODE.fullmatch(name):
        print("sunbid: --name must be 1-64 characters of A-Z a-z 0-9 . _ -", file=sys.stderr)
        return 2
    if role == "publisher" and (agency is None or not CODE.fullmatch(agency)):
        print("sunbid: a publisher token needs --agency CODE", file=sys.stderr)
        return 2
    secret = new_token()
    try:
        await tokens_of(store).add(name, role, agency, digest(secret))
    except AlreadyExists:
        print(f"sunbid: a token named {name!r} exists already", file=sys.stderr)
        return 1
    print(
        f"Token {name!r} ({role}{', agency ' + agency if agency else ''}). "
        "It is shown only this once:"
    )
    print(secret)
    return 0


async def _token_list(store: EventStore) -> int:
    for token in await tokens_of(store).list():
        state = f"revoked {token.revoked_at}" if token.revoked_at else "active"
        print(f"{token.name}\t{token.role}\t{token.agency or '-'}\t{token.created_at}\t{state}")
    return 0


async def _token_revoke(store: EventStore, name: str) -> int:
    if await tokens_of(store).revoke(name):
        print(f"revoked {name!r}")
        return 0
    print(f"sunbid: no active token named {name!r}", file=sys.stderr)
    return 1


async def _vapid_show(settings: Settings) -> int:
    queue = PushQueue(
        settings.data_dir / QUEUE_FILE,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
    )
    await queue.open()
    try:
        key = load_or_create_key(settings.data_dir, subscriptions_exist=await queue.count() > 0)
    except VapidKeyError as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 1
    finally:
        await queue.close()
    print(key.application_server_key)
    return 0


POSTGRES_NOTE = (
    "SUNBID_DATABASE_URL points to PostgreSQL: `sunbid {command}` handles only the "
    "files in the data directory ({data_dir}: push.db, compliance.db, keys), not the "
    "event log. {what} See 'Backup and restore' in the operations documentation."
)


def _postgres_note(settings: Settings, command: str, what: str) -> None:
    """Say what a command leaves to PostgreSQL's tools, when the log is there."""
    if is_postgres(settings.database_url):
        note = POSTGRES_NOTE.format(command=command, data_dir=settings.data_dir, what=what)
        print(f"sunbid: {note}", file=sys.stderr)


def _backup(settings: Settings, target: Path) -> int:
    _postgres_note(
        settings,
        "backup",
        "Back up the log AFTER this command finishes, with pg_dump --format=custom"
        f' --schema={settings.database_schema} --file=FILE "$SUNBID_DATABASE_URL"'
        " (or pg_basebackup).",
    )
    try:
        log = log_path(settings.database_url)
        manifest = make_backup(settings.data_dir, log, target, settings.timezone)
    except TargetNotEmpty as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 2
    except (BackupError, OSError) as exc:
        print(f"sunbid: backup failed, nothing was written to {target}: {exc}", file=sys.stderr)
        return 1
    no_log = manifest.head_seq is None  # the log is in PostgreSQL
    head = "no log (PostgreSQL)" if no_log else f"head {manifest.head_seq}"
    print(
        f"backup {target}: {head}, {len(manifest.files)} files, "
        f"{_size(manifest.total_bytes)}, checked (checksums, integrity"
        f"{'' if no_log else ', hash chain'})"
    )
    return 0


def _restore(settings: Settings, source: Path) -> int:
    _postgres_note(
        settings,
        "restore",
        "Restore the log as well, with pg_restore --clean --if-exists"
        ' --dbname="$SUNBID_DATABASE_URL" FILE (or from the base backup).',
    )
    try:
        log = log_path(settings.database_url)
        restored = restore_backup(source, settings.data_dir, log, settings.timezone)
    except DataDirBusy as exc:
        print(
            f"sunbid: nothing was restored (a restore needs the server stopped): {exc}",
            file=sys.stderr,
        )
        return 1
    except (BackupError, OSError) as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 1
    manifest = restored.manifest
    head = "" if manifest.head_seq is None else f" head {manifest.head_seq},"
    aside = f"; the files it replaced are in {restored.set_aside}" if restored.set_aside else ""
    print(
        f"restored {source} (made {manifest.created_at}):{head} "
        f"{len(manifest.files)} files into {settings.data_dir}{aside}"
    )
    return 0


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


@contextlib.asynccontextmanager
async def open_records(settings: Settings, store: EventStore) -> AsyncIterator[list[DerivedRecord]]:
    """Every record derived from the log, opened, in the order `sunbid verify`
    checks them and `sunbid rebuild` recomputes them: a new stored projection
    is added here (this module wires, so it may open push's)."""
    queue = PushQueue(
        settings.data_dir / QUEUE_FILE,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
    )
    webhooks = WebhookStore(
        settings.data_dir / WEBHOOKS_FILE,
        database_url=settings.database_url,
        database_schema=settings.database_schema,
    )
    await queue.open()
    try:
        await webhooks.open()
        domain = Domain.load()
        projects = open_projects(store, domain)
        stats = open_stats(store, domain)
        clock = Clock(settings.timezone)
        compliance = ComplianceRecord.load(settings, domain, clock)
        cases = open_respond(settings, domain, clock, lambda warning: None, sealing=False)
        yield [
            projects,
            stats,
            compliance,
            PushRecord(queue),
            RespondRecord(cases),
            WebhookRecord(webhooks),
        ]
    finally:
        await webhooks.close()
        await queue.close()


async def _verify(settings: Settings, store: EventStore) -> int:
    due = refusal(await read_versions(data_files(settings)), settings.data_dir)
    if due is not None:
        # The chain is still checked (a backup, say, before it is migrated);
        # the derived records are in their old shape until `sunbid migrate` has run.
        print(f"sunbid: note: {due}", file=sys.stderr)
    report = await store.verify()
    if report.first_bad_seq is not None:
        print(
            f"BAD at seq {report.first_bad_seq}: {report.reason} "
            f"({report.checked} events before it are intact)"
        )
        return 1
    print(f"ok: {report.checked} events, head {report.head}, hash chain intact")
    if due is not None:
        print("derived records not checked: the directory is not migrated yet")
        return 0
    async with open_records(settings, store) as records:
        for record in records:
            problem = await record.check(store)
            if problem is not None:
                print(f"BAD in {record.name}: {problem}")
                return 1
            print(f"ok: {record.name} {record.note or 'is what the log yields'}")
    return 0


def _stopped(settings: Settings, command: str) -> int:
    """`rebuild` and `migrate`: with the data lock held, so never beside a server."""
    try:
        shared = is_postgres(settings.database_url)
        lock = lock_data_dir(settings.data_dir, f"sunbid {command}", shared=shared)
    except DataDirBusy as exc:
        print(f"sunbid: nothing was changed (stop the server first): {exc}", file=sys.stderr)
        return 1
    try:
        if command == "migrate":
            return asyncio.run(_migrate(settings))
        # A rebuild reads only the log: on a directory not yet migrated it
        # would drop what the old files hold and the log does not yet.
        found = asyncio.run(read_versions(data_files(settings)))
        if (problem := refusal(found, settings.data_dir)) is not None:
            print(f"sunbid: nothing was rebuilt: {problem}", file=sys.stderr)
            return 2
        return _with_store(settings, lambda store: _rebuild(settings, store))
    finally:
        unlock_data_dir(lock)


async def _rebuild(settings: Settings, store: EventStore) -> int:
    async with open_records(settings, store) as records:
        for record in records:
            await record.rebuild(store)
            problem = await record.check(store)
            if problem is not None:  # a rebuild that does not verify is a bug: say so
                print(f"BAD in {record.name} after its rebuild: {problem}")
                return 1
            print(f"rebuilt {record.name} from the log (head {store.head})")
    return 0


def _log_with_projects(settings: Settings, clock: Clock) -> EventStore:
    """The log, not yet open, with the projects and statistics tables written beside each append."""
    store = open_store(
        settings.database_url,
        clock,
        synchronous=settings.sqlite_synchronous,
        schema=settings.database_schema,
    )
    domain = Domain.load()
    open_projects(store, domain)
    open_stats(store, domain)
    return store


async def _migrate(settings: Settings) -> int:
    # The steps that append open the log themselves, one at a time.
    clock = Clock(settings.timezone)
    schema = settings.database_schema
    try:
        checked: list[str] = []
        if is_postgres(settings.database_url):  # first: a newer schema stops it all
            found = await pg_migrations.read_versions(settings.database_url, schema)
            checked = pg_migrations.check_versions(found, schema)
        done = await migrate(
            data_files(settings),
            lambda: _log_with_projects(settings, clock),
        )
    except MigrationError as exc:
        print(f"sunbid: {exc}", file=sys.stderr)
        return 1
    except pg.UNAVAILABLE as exc:
        print(f"sunbid: nothing was migrated, PostgreSQL is unreachable: {exc}", file=sys.stderr)
        return 1
    for line in [*checked, *done]:
        print(line)
    print(f"{settings.data_dir}: {'migrated' if done else 'up to date, nothing to do'}")
    return 0


UNREACHABLE: tuple[type[BaseException], ...] = (StoreUnavailable, *pg.UNAVAILABLE)
COPIED_NOTE = (
    "note: the compliance record is derived again from the log at the first start on"
    " PostgreSQL; keep the VAPID key (in {data_dir}) with every server, and run"
    " `sunbid verify` there"
)


def _copy_to(settings: Settings, url: str, schema: str) -> int:
    """`sunbid copy-to`: the SQLite log into PostgreSQL, with the server stopped."""
    problem = None
    source = log_path(settings.database_url)
    if source is None:
        problem = "copy-to copies a SQLite log; SUNBID_DATABASE_URL is PostgreSQL already"
    elif not is_postgres(url):
        problem = f"{url!r} is not a postgresql:// URL"
    elif not source.exists():
        problem = f"there is no SQLite log at {source}"
    else:
        try:
            pg.check_schema_name(schema)
        except ValueError as exc:
            problem = str(exc).replace("SUNBID_DATABASE_SCHEMA", "--schema")
    if problem is not None:
        print(f"sunbid: nothing was copied: {problem}", file=sys.stderr)
        return 2
    try:  # no server appends to the SQLite log while it is copied
        lock = lock_data_dir(settings.data_dir, "sunbid copy-to")
    except DataDirBusy as exc:
        print(f"sunbid: nothing was copied (stop the server first): {exc}", file=sys.stderr)
        return 1
    try:
        found = asyncio.run(read_versions(data_files(settings)))
        if (due := refusal(found, settings.data_dir)) is not None:
            print(f"sunbid: nothing was copied: {due}", file=sys.stderr)
            return 2
        return asyncio.run(_copy(settings, url, schema))
    finally:
        unlock_data_dir(lock)


async def _copy(settings: Settings, url: str, schema: str) -> int:
    clock, domain = Clock(settings.timezone), Domain.load()
    source = SQLiteStore(settings.database_url, clock, readonly=True)
    target = PostgresStore(url, clock, schema=schema)
    projects = open_projects(target, domain)
    try:
        await source.open()
        await target.open()
        push_rows = functools.partial(copy_push_rows, settings.data_dir / QUEUE_FILE)
        case_rows = functools.partial(copy_case_rows, settings.data_dir / CASES_FILE)

        async def side_rows(conn: Any) -> str:  # what is not derived from the log
            return f"{await push_rows(conn)} and {await case_rows(conn)}"

        copied = await copy_log(source, target, [projects], side_rows)
    except CopyRefused as exc:
        print(f"sunbid: nothing was copied: {exc}", file=sys.stderr)
        return 1
    except UNREACHABLE as exc:
        print(f"sunbid: nothing was copied, PostgreSQL is unreachable: {exc}", file=sys.stderr)
        return 1
    finally:
        await target.close()
        await source.close()
    print(
        f"copied {copied.events} events, {copied.tokens} tokens, {copied.keys}"
        f" idempotency keys and {copied.also} into PostgreSQL schema {schema}"
    )
    # Checked as a new process would find it: opened afresh, projects caught up.
    check = PostgresStore(url, clock, schema=schema)
    projects = open_projects(check, domain)
    try:
        await check.open()
        problem = await check_copy(check, copied)
        if problem is None:
            print(
                f"ok: {copied.events} events, head {copied.head}, hash chain intact,"
                " the same tip as the SQLite log"
            )
            problem = await projects.check(check)
            if problem is None:
                print(f"ok: {projects.name} is what the log yields")
    finally:
        await check.close()
    if problem is not None:
        print(f"BAD after the copy: {problem}")
        return 1
    print(COPIED_NOTE.format(data_dir=settings.data_dir))
    return 0


async def _schema_refusal(settings: Settings) -> str | None:
    """Why a server must not start on the PostgreSQL schema (a newer one); or None.
    An unreachable database is left to the store, which says so at start."""
    if not is_postgres(settings.database_url):
        return None
    schema = settings.database_schema
    try:
        pg_migrations.check_versions(
            await pg_migrations.read_versions(settings.database_url, schema), schema
        )
    except MigrationError as exc:
        return str(exc)
    except pg.UNAVAILABLE:
        return None
    return None
