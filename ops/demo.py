"""`cchc demo`: a compressed contest on the real stack, simulated participants posting over HTTP."""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from contest.model import Contest
from ops.embedded import free_port
from ops.stack import Stack
from ops.wiring import contest_of
from runtime.clock import SystemClock
from runtime.settings import DEFAULT_CONTEST, Settings, SettingsError

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô"]
MIDDLE = ["Văn", "Thị", "Hữu", "Đức", "Minh", "Thanh", "Ngọc", "Quang", "Thu", "Xuân"]
GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hùng", "Lan", "Linh", "Long", "Mai",
         "Nam", "Nga", "Phong", "Phương", "Quân", "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Vinh", "Yến"]
console = Console(width=max(Console().width, 120))


class Simulation:
    """Participants who register, start attempts, think, and submit — over HTTP like a front-end."""

    def __init__(self, contest: Contest, ingest: str, results: str, admin_token: str, people: int,
                 seed: int = 2022, desk: str = "") -> None:
        self.contest = contest
        self.ingest = ingest
        self.results = results
        self.desk = desk or ingest  # the committee's routes: the desk's port
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self.people = people
        self.rng = random.Random(seed)
        self.key = {q.id: q.answer for q in contest.questions.values()}
        self.tally: Counter[str] = Counter()
        # what the quiz page sends: the privacy notice's version, accepted (a contest without one asks none)
        self.consent = {"consent": {"version": contest.privacy.version}} if contest.privacy else {}

    async def run(self, *, leave_last: bool = False) -> None:
        """The whole contest; with `leave_last` the last period is left for the committee to close at the desk."""
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            people = await self.register_all(http)
            console.print(f"[bold]{len(people)}[/] participants registered "
                          f"({self.tally['refused_registration']} refusals shown on purpose: excluded, duplicate)")
            for period in self.contest.periods:
                await _sleep_until(period.start_ms)
                console.rule(f"{period.name} open")
                await asyncio.gather(*(self.play(http, person, period.end_ms) for person in people))
                await _sleep_until(period.end_ms)
                if leave_last and period == self.contest.periods[-1]:
                    console.print(f"entries accepted so far {self.tally['accepted']}; {period.name} has ended and is"
                                  f" left for you to close at the desk: {self.desk}/ky/{period.number}")
                    return
                console.print(f"entries accepted so far {self.tally['accepted']}; closing {period.name}…")
                await self.close(http, period.number)
            await self.show_final(http)

    async def register_all(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        units = [u.code for u in self.contest.units.values()]
        people = []
        for n in range(self.people):
            citizen = n % 4 == 3
            body = {"full_name": f"{self.rng.choice(FAMILY)} {self.rng.choice(MIDDLE)} {self.rng.choice(GIVEN)}",
                    "id_number": f"0380{n:08d}", "phone": _phone(n),
                    "birth_date": f"{self.rng.randint(1965, 2004)}-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)}",
                    "group": "nhan_dan" if citizen else "cbccvc",
                    "unit_code": None if citizen else self.rng.choice(units), **self.consent}
            async with http.post(f"{self.ingest}/v1/participants", json=body) as r:
                answer = await r.json()
                if r.status == 201:
                    people.append({"id": answer["participant_id"], "key": answer["access_key"],
                                   "skill": self.rng.uniform(0.3, 0.85)})
        for refused in ({"full_name": "Người Bị Loại Trừ", "id_number": "001099000001", "phone": "0999000001",
                      "birth_date": "1980-01-01", "group": "nhan_dan", **self.consent},
                     {"full_name": "Trùng Số Điện Thoại", "id_number": "038099999999", "phone": "+84900000000",
                      "birth_date": "1980-01-01", "group": "nhan_dan", **self.consent}):
            async with http.post(f"{self.ingest}/v1/participants", json=refused) as r:
                self.tally["refused_registration"] += r.status in (403, 409)
        return people

    async def play(self, http: aiohttp.ClientSession, person: dict[str, Any], end_ms: int) -> None:
        """0–3 attempts spread over the first part of the period, each with a short think time."""
        window = max(1.0, (end_ms - SystemClock().now_ms()) / 1000 - 8)
        for _ in range(self.rng.choice([0, 1, 1, 2, 3])):
            await asyncio.sleep(self.rng.uniform(0, window / 3))
            async with http.post(f"{self.ingest}/v1/attempts", json={"participant_id": person["id"]},
                                 headers={"Authorization": f"Bearer {person['key']}"}) as r:
                if r.status != 201:
                    self.tally[f"attempt_{r.status}"] += 1
                    return
                attempt = await r.json()
            await asyncio.sleep(self.rng.uniform(0.5, 3.0))
            answers = {q["id"]: self.key[q["id"]] if self.rng.random() < person["skill"]
                       else self.rng.choice("ABCD") for q in attempt["questions"]}
            guess = max(0, int(self.rng.gauss(self.people * 1.5, self.people / 2)))
            body = {"token": attempt["token"], "answers": answers, "prediction": guess}
            async with http.post(f"{self.ingest}/v1/submissions", json=body) as r:
                self.tally["accepted" if r.status == 202 else (await r.json())["error"]["code"]] += 1

    async def close(self, http: aiohttp.ClientSession, number: int) -> None:
        url = f"{self.desk}/v1/admin/periods/{number}/close"
        for _ in range(60):
            async with http.post(url, headers=self.admin) as r:
                if r.status == 200:
                    break
                refusal = await r.json()
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
        else:
            raise RuntimeError(f"period {number} could not be closed in a minute: {refusal}")
        async with http.get(f"{self.results}/v1/periods/{number}/prizes") as r:
            show_prizes(self.contest, await r.json())

    async def show_final(self, http: aiohttp.ClientSession) -> None:
        async with http.get(f"{self.results}/v1/final") as r:
            final = await r.json()
        table = Table(title="Giải tập thể toàn cuộc thi (final unit prizes)")
        for col in ("rank", "unit", "participants", "entries", "unit_score"):
            table.add_column(col)
        for u in final["unit"]:
            table.add_row(str(u["rank"]), u["unit_name"], str(u["participants"]), str(u["entries"]),
                          f"{u['unit_score']:.4f}")
        console.print(table)
        async with http.get(f"{self.results}/v1/participation") as r:
            units = (await r.json())["units"]
        below = [u["unit_name"] for u in units if u["below_target"]]
        console.print(f"participation: {len(below)} of {len(units)} units below their target"
                      f"{': ' + ', '.join(below) if below else ''} (cchc participation --below-target)")


def show_prizes(contest: Contest, prizes: dict[str, Any]) -> None:
    period = contest.periods[prizes["period"] - 1]
    console.print(f"[bold]{period.name} closed[/]: actual = {prizes['actual']}, revision {prizes['revision']}, "
                  f"results_digest {prizes['results_digest']}")
    for group in contest.groups:
        table = Table(title=f"{period.name} — {group.name}", title_justify="left")
        for col in ("prize", "rank", "name", "unit", "score", "secs", "guess", "error"):
            table.add_column(col, no_wrap=True, min_width=len(col))
        for p in (p for p in prizes["individual"] if p["group"] == group.code):
            unit = contest.units[p["unit_code"]].name if p["unit_code"] else "—"
            table.add_row(p["prize_name"], str(p["rank"]), p["display_name"], unit, str(p["score"]),
                          f"{p['duration_ms'] / 1000:.1f}", str(p["prediction"]), str(p["prediction_error"]))
        console.print(table)
    for u in prizes["unit"]:
        console.print(f"Giải thi tuần (weekly unit prize): [bold]{u['unit_name']}[/] (unit_score {u['unit_score']:.4f})")


def with_last_period(contest_dir: Path, dest: Path, seconds: int) -> Path:
    """A copy of a relative-[schedule] contest whose last period lasts `seconds` (`cchc demo --open-minutes`)."""
    shutil.copytree(contest_dir, dest)
    toml = dest / "contest.toml"
    text = re.sub(r"(?m)^last_period_seconds = .*\n", "", toml.read_text())
    if "[schedule]\n" not in text:
        raise SettingsError(f"{contest_dir}: --open-minutes needs a contest with a relative [schedule]")
    toml.write_text(text.replace("[schedule]\n", f"[schedule]\nlast_period_seconds = {seconds}\n", 1))
    return dest


def run_demo(settings: Settings, *, participants: int, keep: bool = False, cluster: int = 0,
             read_replica: bool = False, open_minutes: float | None = None) -> int:
    temporary = settings.data_dir == Path(".cchc")
    data_dir = Path(tempfile.mkdtemp(prefix="cchc-demo-")) if temporary else settings.data_dir
    contest_dir = settings.contest_dir or DEFAULT_CONTEST
    if open_minutes is not None:
        contest_dir = with_last_period(contest_dir, data_dir / "contest", max(30, round(open_minutes * 60)))
    settings = replace(settings, data_dir=data_dir,
                       contest_dir=contest_dir, contest_anchor=None,
                       ingest_port=free_port() if settings.ingest_port == 8080 else settings.ingest_port,
                       results_port=free_port() if settings.results_port == 8081 else settings.results_port,
                       desk_port=free_port() if settings.desk_port == 8082 else settings.desk_port,
                       address_limit=0)  # the simulated front-ends all come from loopback
    stack = Stack(settings, scorers=2, cluster=cluster, read_replica=read_replica)
    started = time.monotonic()
    try:
        running = stack.start()
        console.print(stack.ready_line())
        results = f"http://{running.host}:{running.results_port}"
        desk = f"http://{running.host}:{running.desk_port}"
        contest = contest_of(running)
        last = contest.periods[-1]
        console.print(f"[bold]quiz page: http://{running.host}:{running.ingest_port}/[/] — register now, then take"
                      f" {last.name} yourself: it opens {max(0, (last.start_ms - SystemClock().now_ms()) // 1000)} s from"
                      f" now and stays open {(last.end_ms - last.start_ms) / 60_000:g} minutes (`--open-minutes`)")
        console.print(f"[bold]results page: {results}/[/] — open it while the demo runs (every view: /periods/N,"
                      f" /final, /participation){'' if keep else '; `cchc demo --keep` keeps it up afterwards'}")
        console.print(f"[bold]the committee's desk: {desk}/[/] — sign in with Tên [bold]admin[/] and Mã"
                      f" [bold]{running.admin_token}[/] (CCHC_ADMIN_TOKEN, kept in {data_dir / 'secrets.env'})")
        sim = Simulation(contest, f"http://{running.host}:{running.ingest_port}",
                         f"http://{running.host}:{running.results_port}", running.admin_token or "", participants,
                         desk=desk)
        asyncio.run(sim.run(leave_last=keep))
        if keep:
            console.print(f"demo done; the stack keeps serving the results page {results}/ and the desk {desk}/"
                          f" (Tên admin, Mã {running.admin_token}) — Ctrl-C to stop")
            _wait_for_interrupt()
    finally:
        stack.stop()
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0


def _wait_for_interrupt() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def _phone(n: int) -> str:
    """The shapes front-ends send: 09…, +84 9…, 09x.xxx.xxxx (all normalised by ingest)."""
    d = f"9{n:08d}"
    return [f"0{d}", f"+84 {d[:2]} {d[2:5]} {d[5:]}", f"0{d[:3]}.{d[3:6]}.{d[6:]}"][n % 3]


async def _sleep_until(ms: int) -> None:
    delay = (ms - SystemClock().now_ms()) / 1000
    if delay > 0:
        await asyncio.sleep(delay)
