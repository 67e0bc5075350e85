"""The `cchc` command line (DESIGN §8)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from contest.load import ContestError
from eventstore.errors import StoreError
from runtime.logs import configure_logging
from runtime.settings import Settings, SettingsError

if TYPE_CHECKING:
    from admin.service import Committee
    from contest.model import Contest
    from ops.wiring import Clients

# The one place a process serves /metrics (DESIGN §3: never its public port).
METRICS_PORT_HELP = ("serve this process's /metrics on this port, bound to CCHC_METRICS_HOST (default 127.0.0.1);"
                     " its public port serves none")


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        contest_dir=Path(args.contest) if getattr(args, "contest", None) else None,
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        ingest_port=getattr(args, "ingest_port", None), results_port=getattr(args, "results_port", None),
        desk_port=getattr(args, "desk_port", None), partitions=getattr(args, "partitions", None))


def _rehearsal(settings: Settings) -> Settings:
    """`cchc up --rehearsal` (DESIGN §8): the contest's calendar shifted to start now, marked "Thi thử" on every
    page, in a data directory of its own (`.cchc-thi-thu/<contest>` unless --data-dir says otherwise). Embedded
    servers only: on the real servers a rehearsal's entries would sit beside the real contest's."""
    from dataclasses import replace

    if settings.redis_url or settings.database_url:
        raise SettingsError("--rehearsal runs on embedded servers of its own: unset CCHC_REDIS_URL and CCHC_DATABASE_URL")
    data_dir = settings.data_dir
    if data_dir == Path(".cchc"):
        data_dir = Path(".cchc-thi-thu") / settings.contest_dir.resolve().name
    return replace(settings, rehearsal=True, data_dir=data_dir)


def _check_mode(settings: Settings) -> None:
    """A data directory holds a rehearsal or a real contest, never one after the other."""
    marker = settings.data_dir / "rehearsal"
    if settings.rehearsal:
        if (settings.data_dir / "secrets.env").exists() and not marker.exists():
            raise SettingsError(f"{settings.data_dir} holds a real contest: a rehearsal needs a data directory of its own")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text("this data directory holds a rehearsal (cchc up --rehearsal)\n")
    elif marker.exists():
        raise SettingsError(f"{settings.data_dir} holds a rehearsal: start it with --rehearsal, or use another"
                            " data directory")


def cmd_up(args: argparse.Namespace) -> int:
    from ops.stack import Stack

    settings = _rehearsal(_settings(args)) if args.rehearsal else _settings(args)
    _check_mode(settings)
    stack = Stack(settings, scorers=args.scorers, cluster=args.cluster, read_replica=args.read_replica)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        stack.start()
        print(stack.ready_line(), flush=True)
        while not stopping:
            for name in stack.supervise():
                print(f"cchc: {name} exited; restarted it (see {stack.log_dir / name}.log)", flush=True)
            stack.run_scheduled(time.monotonic())
            for line in stack.backup_tick():
                print(line, flush=True)
            time.sleep(0.5)
    finally:
        stack.stop()
    print("cchc stopped", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ops.demo import run_demo

    return run_demo(_settings(args), participants=args.participants, keep=args.keep, cluster=args.cluster,
                    read_replica=args.read_replica, open_minutes=args.open_minutes)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ops.wiring import serve_ingest

    serve_ingest(Settings.from_env(ingest_port=args.port), args.metrics_port)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from ops.wiring import serve_results

    serve_results(Settings.from_env(results_port=args.port), args.metrics_port)
    return 0


def cmd_desk(args: argparse.Namespace) -> int:
    from ops.wiring import serve_desk

    serve_desk(Settings.from_env(desk_port=args.port), args.metrics_port)
    return 0


def cmd_scorer(args: argparse.Namespace) -> int:
    import os
    import socket

    from ops.wiring import check_scorers, run_scorer

    if args.check:
        return check_scorers(Settings.from_env(), args.name)
    run_scorer(Settings.from_env(), args.name or f"{socket.gethostname()}-{os.getpid()}",
               metrics_port=args.metrics_port)
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from ops.stack import migrate_schema
    from ops.wiring import contest_of

    settings = Settings.from_env()
    contest = contest_of(settings)  # a broken contest folder is reported here, file, line and field
    print(f"contest {contest.slug}: {len(contest.periods)} periods, {len(contest.groups)} groups, "
          f"{len(contest.prize_units())} prize units ({len(contest.units)} units), {len(contest.questions)} questions")
    asyncio.run(migrate_schema(settings))
    print("schema up to date")
    return 0


def _with_clients(settings: Settings, work: Callable[[Contest, Clients], Awaitable[int]]) -> int:
    """Run `work` with this settings' contest and clients (for the one-shot admin commands)."""
    from ops.wiring import contest_of, open_clients

    async def main() -> int:
        contest = contest_of(settings)
        clients = await open_clients(settings, contest, committee=True)
        try:
            return await work(contest, clients)
        finally:
            await clients.close()

    return asyncio.run(main())


def cmd_admin(args: argparse.Namespace) -> int:
    """close / recompute / disqualify / correct-answer / erase / forget / move / reissue-key: the Committee
    service, as the desk's JSON routes and pages call it."""
    from eventstore.redis_stream.client import durability_mode
    from eventstore.redis_stream.writer import StreamWriter
    from ops.wiring import build_committee, store_clock
    from runtime.errors import Refusal

    settings = Settings.from_env()
    by = args.by or f"cli:{getpass.getuser()}"  # who did it goes into the event, as the admin API records it

    async def act(committee: Committee) -> str:
        if args.command in ("close", "recompute"):
            act = committee.close if args.command == "close" else committee.recompute
            done = await act(args.period, by=by, reason=args.reason or "")
            return (f"period {done.period}: revision {done.revision}, results_digest {done.results_digest}, "
                    f"dead letters {done.dead_letters}" + (" (not counted: see `cchc dead-letters`)" if done.dead_letters
                                                           else ""))
        if args.command == "disqualify":
            await committee.disqualify(args.participant_id, args.reason, by=by)
            return f"{args.participant_id} disqualified"
        if args.command in ("erase", "forget"):
            return await _erasure(committee, args, by)
        if args.command == "move":
            moved = await committee.move(args.participant_id, args.unit_code, by=by, reason=args.reason)
            return f"{moved.participant_id} moved from {moved.from_unit or '(no unit)'} to {moved.unit_code}"
        if args.command == "reissue-key":
            issued = await committee.reset_key(args.participant_id, by=by, reason=args.reason)
            return f"{issued.participant_id}: new access key {issued.access_key} (shown once; the old one stopped working)"
        await committee.correct_answer(args.question_id, args.answer, by=by, reason=args.reason or "")
        return f"answer key: {args.question_id} is now {args.answer}"

    async def work(contest: Contest, clients: Clients) -> int:
        writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
        try:
            async with store_clock(clients) as clock:
                print(await act(build_committee(contest, clients, writer, clock, settings)))
        except Refusal as e:
            print(f"cchc {args.command}: {e}", file=sys.stderr)
            return 2
        return 0

    return _with_clients(settings, work)


async def _erasure(committee: Committee, args: argparse.Namespace, by: str) -> str:
    """`cchc erase` and `cchc forget --expired`; both return once Valkey has begun rewriting its AOF."""
    from contest.timefmt import iso_ms

    tz = committee.contest.tz
    if args.command == "erase":
        at_ms = await committee.erase(args.participant_id, args.reason, by=by)
        said = f"{args.participant_id}: personal data erased at {iso_ms(at_ms, tz)}"
    else:
        done = await committee.forget_expired(by=by)
        if done.closed_ms is None:
            said = "not every period is closed: nothing to forget yet"
        else:
            due = "now" if done.erased else f"at {iso_ms(done.due_ms or 0, tz)}"
            said = (f"last close {iso_ms(done.closed_ms, tz)}; retention erasure due {due}: {done.erased} participant(s)"
                    f" erased now, {done.released} identity claim(s) of erased participants released")
    await committee.erasures.aof.settled()
    return said


def cmd_replay(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from eventstore.postgres import count_events
    from projections.replay import REPLAYED_KINDS, replay

    async def work(contest: Contest, clients: Clients) -> int:
        total = await count_events(clients.pool, REPLAYED_KINDS)
        with Progress() as bar:
            task = bar.add_task("replaying events", total=total)
            report = await replay(contest, clients.pool, batch_size=args.batch_size,
                                  progress=lambda n: bar.advance(task, n))
        rate = report.rate
        print(f"replayed {report.events + report.skipped} events ({report.skipped} of them project nothing and were"
              f" not read) and {report.results} published results in "
              f"{report.seconds:.1f} s ({rate:,.0f} events/s)")
        for line in report.mismatches:
            print(f"DIGEST MISMATCH {line}", file=sys.stderr)
        return 1 if report.mismatches else 0

    return _with_clients(Settings.from_env(), work)


def cmd_status(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ops.status import health, render
    from ops.wiring import build_monitor
    from runtime.clock import SystemClock

    settings = Settings.from_env()
    urls = {"ingest": args.ingest_url or f"http://{settings.host}:{settings.ingest_port}",
            "results": args.results_url or f"http://{settings.host}:{settings.results_port}",
            "desk": args.desk_url or f"http://{settings.host}:{settings.desk_port}"}

    async def work(contest: Contest, clients: Clients) -> int:
        checks = await health(clients, urls)
        try:
            seen = await build_monitor(contest, clients, SystemClock()).observe()
        except StoreError as e:  # a server is down: the health table already says which
            print(f"cannot observe the stream and periods: {e}", file=sys.stderr)
            seen = None
        return 0 if render(Console(), contest, seen, checks) else 1

    return _with_clients(settings, work)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from eventstore.events import decode_many
    from eventstore.redis_stream.inspection import Streams

    async def work(contest: Contest, clients: Clients) -> int:
        streams = Streams(clients.redis, clients.keys)
        parked = await streams.dead_lettered()
        for number, dead_id, fields in parked:
            try:
                kinds = ", ".join(type(e).__name__ for e in decode_many(fields.get("raw", b"")))
            except Exception:
                kinds = "undecodable"
            print(f"{fields.get('entry_id', b'?').decode()}  [{kinds}]  {fields.get('error', b'').decode()}")
            if args.requeue:
                new_id = await streams.requeue_dead_letter(number, dead_id)
                print(f"  requeued as {new_id}" if new_id else "  already requeued by someone else")
        print(f"{len(parked)} parked entr{'y' if len(parked) == 1 else 'ies'}")
        return 0

    return _with_clients(Settings.from_env(), work)


def cmd_simulate(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from eventstore.redis_stream.client import durability_mode
    from eventstore.redis_stream.writer import StreamWriter
    from ops.simulate import simulate

    async def work(contest: Contest, clients: Clients) -> int:
        period = contest.period(args.period)
        if period is None:
            print(f"no period {args.period} in this contest", file=sys.stderr)
            return 2
        with Progress() as bar:
            task = bar.add_task("appending to the stream", total=args.participants * (1 + 2 * 3))
            writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
            written = await simulate(contest, writer, period, args.participants, args.entries,
                                     progress=lambda n: bar.advance(task, n))
            bar.update(task, completed=written, total=written)
        print(f"appended {written:,} stream entries for {args.participants:,} participants in period {period.number}")
        return 0

    return _with_clients(Settings.from_env(), work)


def _format_of(out: str | None, default: str) -> str:
    return "csv" if out and out.lower().endswith(".csv") else "xlsx" if out else default


def cmd_export(args: argparse.Namespace) -> int:
    from eventstore.redis_stream.client import durability_mode
    from eventstore.redis_stream.writer import StreamWriter
    from ops.wiring import build_committee, store_clock
    from runtime.errors import Refusal

    settings = Settings.from_env()
    final = args.period == "final"
    if not final and not (args.period.isascii() and args.period.isdigit()):
        print("cchc export: PERIOD is a period number or 'final'", file=sys.stderr)
        return 2
    if args.personal_data and (args.public or final):
        print("cchc export: --personal-data is for the committee's copy of a period", file=sys.stderr)
        return 2
    if args.personal_data and not (args.reason or "").strip():
        print("cchc export: --personal-data needs --reason (recorded with your name: DESIGN §10)", file=sys.stderr)
        return 2
    if args.personal_data:
        settings.pii_key_bytes()  # refused here, before anything is recorded, when the key is missing
    by = args.by or f"cli:{getpass.getuser()}"

    async def work(contest: Contest, clients: Clients) -> int:
        copy = "-public" if args.public else ""
        name = "final" if final else f"period-{args.period}"
        out = Path(args.out or f"{contest.slug}-{name}{copy}.{args.format}")
        writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
        try:
            async with store_clock(clients) as clock:
                committee = build_committee(contest, clients, writer, clock, settings)
                if final:
                    rows = await committee.export_final(out, fmt=args.format)
                    print(f"wrote {out} ({rows:,} prize units ranked, with the participation report)")
                    return 0
                rows = await committee.export_period(int(args.period), out, fmt=args.format, by=by,
                                                     revision=args.revision, public=args.public,
                                                     personal_reason=args.reason if args.personal_data else None)
        except Refusal as e:
            print(f"cchc export: {e}", file=sys.stderr)
            return 2
        kind = "public copy" if args.public else "winners with personal data" if args.personal_data else "committee's copy"
        print(f"wrote {out} ({rows:,} ranking rows, {kind})")
        return 0

    return _with_clients(settings, work)


def cmd_participation(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from admin.export import export_participation
    from contest.participation import participation
    from projections.live_queries import LiveQueries

    async def work(contest: Contest, clients: Clients) -> int:
        if args.period is not None and contest.period(args.period) is None:
            print(f"cchc participation: no period {args.period} in this contest", file=sys.stderr)
            return 2
        counts = await LiveQueries(clients.pool).participants_per_unit(args.period, sorted(contest.counting_groups()))
        rows = participation(contest, counts)
        if args.out:
            written = export_participation(contest, rows, args.period, Path(args.out), fmt=_format_of(args.out, "xlsx"))
            print(f"wrote {args.out} ({written} units)")
        shown = [u for u in rows if u.below_target] if args.below_target else rows
        scope = "the whole contest" if args.period is None else f"period {args.period}"
        below = sum(u.below_target for u in rows)
        table = Table(title=f"participation over {scope}: {below} of {len(rows)} units below their target",
                      title_justify="left")
        for column in ("unit", "name", "kind", "headcount", "participants", "rate", "target", ""):
            table.add_column(column, justify="right" if column in ("headcount", "participants", "rate") else "left")
        for u in shown:
            table.add_row(u.unit_code, u.unit_name, u.kind, f"{u.headcount:,}", f"{u.participants:,}",
                          f"{u.participation_rate:.1%}", "" if u.target is None else f"{u.target:.0%}",
                          "BELOW" if u.below_target else "")
        Console().print(table)
        return 0

    return _with_clients(Settings.from_env(), work)


def cmd_questions(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from admin.export import export_questions
    from admin.questions import question_report
    from projections.live_queries import LiveQueries

    async def work(contest: Contest, clients: Clients) -> int:
        if args.period is not None and contest.period(args.period) is None:
            print(f"cchc questions: no period {args.period} in this contest", file=sys.stderr)
            return 2
        stats = await question_report(LiveQueries(clients.pool), contest, args.period)
        if args.out:
            export_questions(contest, stats, args.period, Path(args.out), fmt=_format_of(args.out, "xlsx"))
            print(f"wrote {args.out} ({len(stats)} questions)")
        suspects = [q for q in stats if q.likely_wrong_key]
        shown = suspects if args.flagged else sorted(stats, key=lambda q: (not q.likely_wrong_key,
                                                                          q.right_rate if q.right_rate is not None
                                                                          else 2.0))
        scope = "the whole contest" if args.period is None else f"period {args.period}"
        table = Table(title=f"questions over {scope}: {len(suspects)} likely wrong key(s) — hardest first",
                      title_justify="left")
        for column in ("question", "key", "drawn", "right", "top drawn", "top right", "top A/B/C/D/blank", ""):
            table.add_column(column)
        for q in shown[:args.limit]:
            choices = "/".join(str(q.top_choices.get(c, 0)) for c in ("A", "B", "C", "D", ""))
            table.add_row(q.question_id, q.answer, f"{q.drawn:,}", "" if q.right_rate is None else f"{q.right_rate:.0%}",
                          f"{q.top_drawn:,}", "" if q.top_right_rate is None else f"{q.top_right_rate:.0%}", choices,
                          f"LIKELY WRONG KEY: strong entries chose {q.suggested_answer}" if q.likely_wrong_key else "")
        Console().print(table)
        return 0

    return _with_clients(Settings.from_env(), work)


def cmd_flags(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from admin.flags import period_flags
    from projections.live_queries import LiveQueries

    async def work(contest: Contest, clients: Clients) -> int:
        if contest.period(args.period) is None:
            print(f"cchc flags: no period {args.period} in this contest", file=sys.stderr)
            return 2
        flags = await period_flags(LiveQueries(clients.pool), contest, args.period)
        table = Table(title=f"period {args.period}: {len(flags)} flag(s) to review before publishing",
                      title_justify="left")
        for column in ("kind", "participant_id", "attempt_id", "detail"):
            table.add_column(column)
        for f in flags:
            table.add_row(f.kind, f.participant_id, f.attempt_id or "", f.detail)
        Console().print(table)
        return 0

    return _with_clients(Settings.from_env(), work)


def _beside(args: argparse.Namespace) -> Settings:
    """Settings of the backup commands: beside a running `cchc up` of --data-dir (its stack.env names the servers)."""
    import os

    env = {**os.environ, **({"CCHC_DATA_DIR": args.data_dir} if args.data_dir else {})}
    return Settings.from_env(env, contest_dir=Path(args.contest) if getattr(args, "contest", None) else None)


def cmd_backup(args: argparse.Namespace) -> int:
    """A base backup now (pg_basebackup into CCHC_BACKUP_DIR), then the retention."""
    from ops.backup import BackupError, human, local, prune, take_base_backup
    from ops.wiring import contest_of

    settings = _beside(args)
    contest = contest_of(settings)
    started = time.monotonic()
    try:
        taken = take_base_backup(settings, contest_dir=str(settings.contest_dir.resolve()), contest_slug=contest.slug)
    except BackupError as e:
        print(f"cchc backup: {e}", file=sys.stderr)
        return 2
    print(f"base backup {taken.name}: {human(taken.size_bytes)}, timeline {taken.timeline}, WAL {taken.start_lsn} –"
          f" {taken.end_lsn}, restorable from {local(taken.finished_at)} ({time.monotonic() - started:.1f} s)")
    for removed in prune(settings):
        print(f"retention: removed {removed}")
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    from ops.backup import describe

    print("\n".join(describe(_beside(args))))
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from ops.backup import BackupError, parse_time
    from ops.restore import restore

    try:
        target = None if args.to == "latest" else parse_time(args.to)
        report = restore(_beside(args), target=target, into=Path(args.into) if args.into else None,
                         force=args.force, contest_dir=Path(args.contest) if args.contest else None)
    except BackupError as e:
        print(f"cchc restore: {e}", file=sys.stderr)
        return 2
    return 0 if report.ok else 1


def cmd_wal_archiver(args: argparse.Namespace) -> int:
    from ops.backup import run_archiver

    return run_archiver(_beside(args))


def cmd_contest_check(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from contest.load import load_contest
    from ops.contest_summary import summary, warnings

    # a relative [schedule] (the demo) is checked as if the stack started now
    contest = load_contest(args.dir, anchor=datetime.now(UTC))
    print("\n".join(summary(contest)))
    for line in warnings(contest):
        print(f"warning: {line}")
    print(f"{args.dir}: OK")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cchc", description="Scoring backbone for CCHC online quiz contests")
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole stack in the foreground")
    demo = sub.add_parser("demo", help="a compressed contest with simulated participants, end to end")
    for cmd in (up, demo):
        cmd.add_argument("--contest", help="contest folder (default: contests/demo)")
        cmd.add_argument("--data-dir", help="where servers, secrets and logs live (default .cchc)")
        cmd.add_argument("--ingest-port", type=int, default=8080)
        cmd.add_argument("--results-port", type=int, default=8081)
        cmd.add_argument("--desk-port", type=int, default=8082)
        cmd.add_argument("--partitions", type=int, help="the stream in P partitions (default CCHC_PARTITIONS or 1)")
        cmd.add_argument("--cluster", type=int, default=0, metavar="N",
                         help="an N-master Valkey Cluster (one replica each) on loopback instead of one Valkey")
        cmd.add_argument("--read-replica", action="store_true",
                         help="the results API reads a streaming replica of the embedded PostgreSQL")
    up.add_argument("--scorers", type=int, default=2)
    up.add_argument("--rehearsal", action="store_true",
                    help="a rehearsal (thi thử) of the contest today: its calendar shifted to start now, every page"
                         " marked 'Thi thử', its data in a directory of its own (default .cchc-thi-thu/CONTEST)")
    up.set_defaults(func=cmd_up)
    demo.add_argument("--participants", type=int, default=150)
    demo.add_argument("--keep", action="store_true", help="keep the stack (and the results page) up after the demo")
    demo.add_argument("--open-minutes", type=float,
                      help="how long the last week stays open for you to take the quiz (default: the contest's"
                           " last_period_seconds, 10 minutes for the demo)")
    demo.set_defaults(func=cmd_demo)
    ingest = sub.add_parser("ingest", help="one ingest process")
    ingest.add_argument("--port", type=int, default=8080)
    ingest.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    ingest.set_defaults(func=cmd_ingest)
    results = sub.add_parser("results", help="one results API process")
    results.add_argument("--port", type=int, default=8081)
    results.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    results.set_defaults(func=cmd_results)
    desk = sub.add_parser("desk", help="the committee's desk: its pages and the admin JSON routes")
    desk.add_argument("--port", type=int, default=8082)
    desk.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    desk.set_defaults(func=cmd_desk)
    scorer = sub.add_parser("scorer", help="one scorer worker")
    scorer.add_argument("--name", help="consumer name (default host-pid)")
    scorer.add_argument("--metrics-port", type=int, help=METRICS_PORT_HELP)
    scorer.add_argument("--check", action="store_true", help="exit 0 if the scorer (any, without --name) is beating")
    scorer.set_defaults(func=cmd_scorer)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    close = sub.add_parser("close", help="close a period (after its end)")
    close.add_argument("period", type=int)
    close.set_defaults(func=cmd_admin)
    recompute = sub.add_parser("recompute", help="publish a new revision of a closed period")
    recompute.add_argument("period", type=int)
    recompute.set_defaults(func=cmd_admin)
    dq = sub.add_parser("disqualify", help="disqualify a participant")
    dq.add_argument("participant_id")
    dq.add_argument("--reason", required=True)
    dq.set_defaults(func=cmd_admin)
    fix = sub.add_parser("correct-answer", help="correct one answer of the key")
    fix.add_argument("question_id")
    fix.add_argument("answer", choices=["A", "B", "C", "D"])
    fix.add_argument("--reason", help="why the key was wrong (recorded in the event)")
    erase = sub.add_parser("erase", help="erase a participant's personal data (a request received by other means;"
                                         " it cannot be undone)")
    erase.add_argument("participant_id")
    erase.add_argument("--reason", required=True, help="why (recorded in the event: who, why, when)")
    erase.set_defaults(func=cmd_admin)
    forget = sub.add_parser("forget", help="erased participants' identity claims once every period is closed;"
                                           " everyone's personal data retention_days after the last close")
    forget.add_argument("--expired", action="store_true", required=True,
                        help="erase what the retention rule says is due (the only mode; `cchc up` runs it hourly)")
    forget.set_defaults(func=cmd_admin)
    for action in (close, recompute):
        action.add_argument("--reason", help="why (recorded in the results marker)")
    move = sub.add_parser("move", help="move a participant to another unit (open periods at once; a closed one"
                                       " when recomputed)")
    move.add_argument("participant_id")
    move.add_argument("unit_code")
    move.add_argument("--reason", required=True)
    move.set_defaults(func=cmd_admin)
    reissue = sub.add_parser("reissue-key", help="a new access key for a participant (printed once)")
    reissue.add_argument("participant_id")
    reissue.add_argument("--reason", required=True)
    reissue.set_defaults(func=cmd_admin)
    for action in (close, recompute, dq, fix, erase, forget, move, reissue):
        action.add_argument("--by", help="your name, recorded in the event (default cli:USER)")
    fix.set_defaults(func=cmd_admin)
    status = sub.add_parser("status", help="health, periods, lag and scorers at a glance (exit 1 if unwell)")
    status.add_argument("--ingest-url", help="default http://127.0.0.1:8080")
    status.add_argument("--results-url", help="default http://127.0.0.1:8081")
    status.add_argument("--desk-url", help="default http://127.0.0.1:8082")
    status.set_defaults(func=cmd_status)
    dead = sub.add_parser("dead-letters", help="list entries no scorer could take (and --requeue them)")
    dead.add_argument("--requeue", action="store_true", help="put them back on the stream (after a fix)")
    dead.set_defaults(func=cmd_dead_letters)
    exp = sub.add_parser("export", help="a closed period's results, or the final unit results, for the committee"
                                        " (xlsx or csv)")
    exp.add_argument("period", help="a period number, or 'final' (every period closed)")
    exp.add_argument("--format", choices=["xlsx", "csv"], default="xlsx")
    exp.add_argument("--out", help="file to write (default SLUG-period-N.FORMAT / SLUG-final.FORMAT)")
    exp.add_argument("--revision", type=int, help="an older revision (default the latest)")
    exp.add_argument("--public", action="store_true",
                     help="the public copy: no phone column, no flags (the only difference: personal data)")
    exp.add_argument("--personal-data", action="store_true",
                     help="add winners' CCCD, phone and birth date (decrypted with CCHC_PII_KEY); needs --reason")
    exp.add_argument("--reason", help="why the personal data is read (recorded with your name)")
    exp.add_argument("--by", help="your name, recorded with a personal-data export (default cli:USER)")
    exp.set_defaults(func=cmd_export)
    part = sub.add_parser("participation", help="every unit against its participation target: whom to remind")
    part.add_argument("--period", type=int, help="one period (default the whole contest)")
    part.add_argument("--below-target", action="store_true", help="list only the units below their target")
    part.add_argument("--out", help="also write the report (.xlsx or .csv)")
    part.set_defaults(func=cmd_participation)
    ques = sub.add_parser("questions", help="per question: drawn, answered right, among strong entries too;"
                                            " likely wrong answer keys")
    ques.add_argument("--period", type=int, help="one period (default the whole contest)")
    ques.add_argument("--flagged", action="store_true", help="list only the likely wrong keys")
    ques.add_argument("--limit", type=int, default=40, help="rows to print (default 40; --out writes them all)")
    ques.add_argument("--out", help="also write the statistics (.xlsx or .csv)")
    ques.set_defaults(func=cmd_questions)
    flags = sub.add_parser("flags", help="what to review before publishing a period: too fast, shared addresses, "
                                         "copied entries")
    flags.add_argument("period", type=int)
    flags.set_defaults(func=cmd_flags)
    contest_cmd = sub.add_parser("contest", help="contest folders").add_subparsers(dest="action", required=True)
    check = contest_cmd.add_parser("check", help="validate a contest folder (every error with file, line and key) "
                                                 "and summarise it")
    check.add_argument("dir")
    check.set_defaults(func=cmd_contest_check)
    sim = sub.add_parser("simulate", help="bulk-generate a realistic week straight into the stream (scale tests)")
    sim.add_argument("--participants", type=int, default=1_000_000)
    sim.add_argument("--entries", type=int, default=3_000_000)
    sim.add_argument("--period", type=int, default=1)
    sim.set_defaults(func=cmd_simulate)
    backup = sub.add_parser("backup", help="take a base backup now (pg_basebackup into CCHC_BACKUP_DIR), then apply"
                                           " the retention")
    backups = sub.add_parser("backups", help="the base backups, the WAL archive and the restorable range")
    restore = sub.add_parser("restore", help="rebuild PostgreSQL from the backups (stop `cchc up` first), check it")
    archiver = sub.add_parser("wal-archiver", help="stream PostgreSQL's WAL into CCHC_BACKUP_DIR (`cchc up` runs it)")
    for cmd in (backup, backups, restore, archiver):
        cmd.add_argument("--data-dir", help="the stack's data directory (default .cchc); backups in DATA_DIR/backups"
                                            " unless CCHC_BACKUP_DIR says otherwise")
    for cmd in (backup, restore):
        cmd.add_argument("--contest", help="contest folder (restore: default the one the base backup recorded)")
    restore.add_argument("--to", default="latest", metavar="TIME|latest",
                         help="ISO-8601 with its offset, or latest (the end of the archive; the default)")
    restore.add_argument("--into", metavar="DIR", help="restore into DIR/postgres instead (a scratch copy to look at;"
                                                       " the live database untouched)")
    restore.add_argument("--force", action="store_true",
                         help="allow a restore of the live database to a time (it forgets what was archived after it)")
    backup.set_defaults(func=cmd_backup)
    backups.set_defaults(func=cmd_backups)
    restore.set_defaults(func=cmd_restore)
    archiver.set_defaults(func=cmd_wal_archiver)
    replay = sub.add_parser("replay", help="rebuild every projection from the event table")
    replay.add_argument("--batch-size", type=int, default=5000)
    replay.set_defaults(func=cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(Settings.from_env().log_level)
    try:
        return int(args.func(args))
    except (SettingsError, ContestError, StoreError) as e:
        print(f"cchc {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
