"""The `cchc` command line (DESIGN §8)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from contest.load import ContestError
from eventstore.errors import StoreUnavailable
from ops.logs import configure_logging
from ops.settings import Settings, SettingsError


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        contest_dir=Path(args.contest) if getattr(args, "contest", None) else None,
        data_dir=Path(args.data_dir) if getattr(args, "data_dir", None) else None,
        ingest_port=getattr(args, "ingest_port", None), results_port=getattr(args, "results_port", None))


def cmd_up(args: argparse.Namespace) -> int:
    from ops.stack import Stack

    stack = Stack(_settings(args), scorers=args.scorers)
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
            stack.check_children()
            time.sleep(0.2)
    finally:
        stack.stop()
    print("cchc stopped", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ops.demo import run_demo

    return run_demo(_settings(args), participants=args.participants)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ops.wiring import serve_ingest

    serve_ingest(Settings.from_env(ingest_port=args.port))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from ops.wiring import serve_results

    serve_results(Settings.from_env(results_port=args.port))
    return 0


def cmd_scorer(args: argparse.Namespace) -> int:
    import socket

    from ops.wiring import run_scorer

    run_scorer(Settings.from_env(), args.name or f"{socket.gethostname()}-{__import__('os').getpid()}")
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from ops.stack import _migrate

    asyncio.run(_migrate(Settings.from_env()))
    print("schema up to date")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from ops.clock import SystemClock
    from ops.wiring import build_ingest, contest_of, open_clients

    settings = Settings.from_env()

    async def main() -> int:
        contest = contest_of(settings)
        if contest.period(args.period) is None:
            print(f"no period {args.period} in this contest", file=sys.stderr)
            return 2
        clients = await open_clients(settings)
        try:
            ingest = await build_ingest(contest, clients, settings, SystemClock())
            closed = await ingest.closer.close(args.period)
        finally:
            await clients.close()
        print(f"period {closed.period} closed: revision {closed.revision}, results_digest {closed.results_digest}")
        return 0

    return asyncio.run(main())


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
    up.add_argument("--scorers", type=int, default=2)
    up.set_defaults(func=cmd_up)
    demo.add_argument("--participants", type=int, default=150)
    demo.set_defaults(func=cmd_demo)
    ingest = sub.add_parser("ingest", help="one ingest process")
    ingest.add_argument("--port", type=int, default=8080)
    ingest.set_defaults(func=cmd_ingest)
    results = sub.add_parser("results", help="one results API process")
    results.add_argument("--port", type=int, default=8081)
    results.set_defaults(func=cmd_results)
    scorer = sub.add_parser("scorer", help="one scorer worker")
    scorer.add_argument("--name", help="consumer name (default host-pid)")
    scorer.set_defaults(func=cmd_scorer)
    sub.add_parser("migrate", help="create or upgrade the schema").set_defaults(func=cmd_migrate)
    close = sub.add_parser("close", help="close a period (after its end)")
    close.add_argument("period", type=int)
    close.set_defaults(func=cmd_close)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_logging(Settings.from_env().log_level)
    try:
        return int(args.func(args))
    except (SettingsError, ContestError, StoreUnavailable) as e:
        print(f"cchc {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
