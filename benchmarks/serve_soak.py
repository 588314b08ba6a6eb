"""A soak test of `textrnn serve` as a real process: clients that misbehave, then is it whole?

    python benchmarks/serve_soak.py [--checkpoint english-char] [--duration 180] [--clients 2]
                                    [--threads N] [--min-speed-ratio 0.8] [--rss-tolerance 0.10]

Starts `python -m textrnn serve --host 127.0.0.1 --port 0` (loopback only: this script sends
nothing anywhere else) with one small language model, and stops it at the end (SIGTERM). Then:

1. warm-up: a long prompt made by the server itself (in the model's vocabulary), --warmup
   seconds of the load below (the memory allocators reach their high-water marks), the drain;
   then the server's resident set (VmRSS from /proc/PID/status) and the speed of a fresh request
   (a plain /generate of --speed-length tokens, best of 3);
2. for --duration seconds, --clients clients of each kind, each sending request after request:
   - prefill: a prompt of about 600 tokens, 16 samples, streaming; gone at a random moment in
     the first half second (mostly while the prompt runs);
   - mid-stream: streaming, gone after a random number of events;
   - before-first: streaming, gone right after sending (before any event);
   - slow-reader: streaming, reading a few hundred bytes at a time with pauses, gone at a random moment;
   - abandoned: plain (non-streaming) /generate of 4 long samples, gone after a random wait;
   - evaluate: /evaluate of 64 texts of 300 characters, gone at a random moment;
   - bad: bodies too large (declared, and chunked without a length), not JSON, the wrong
     Content-Type or none, a foreign Host or Origin, a body that never ends (the server's
     --body-timeout is set to 2 s here); each must get its own 4xx status;
   - whole: a complete streaming request, which must end with its `done` event;
3. the checks (the script exits with status 1 if one fails): /healthz shows 0 streams, 0
   admitted slots and 0 queued /evaluate requests (within --drain-wait seconds); every refusal
   got its expected status and every whole request its `done`; the RSS is back within
   --rss-tolerance of its value after the warm-up; a fresh request is served at least
   --min-speed-ratio times as fast as before.

It prints the figures. Timings on a shared machine are rough: the speed check compares best-of-3
runs of the same request, before and after, on the same server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
IO_TIMEOUT = 30.0  # no single read or write waits longer
PAUSE = 0.05  # seconds a client waits between two requests, on average (a loop without it floods the server)


class Client:
    """One HTTP/1.1 connection (asyncio streams, no client library): send a request, read its
    head, then its body a piece at a time; ``close`` whenever the script wants to go away."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.chunked = False
        self.left = 0

    async def send(self, path: str, body: bytes | None = None, headers: dict | None = None,
                   method: str = "POST") -> None:
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), IO_TIMEOUT)
        head = {"Host": f"{HOST}:{self.port}", **(headers or {})}
        if body is not None and "Content-Length" not in head and head.get("Transfer-Encoding") != "chunked":
            head["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items() if v is not None)]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        await asyncio.wait_for(self.writer.drain(), IO_TIMEOUT)

    async def post_json(self, path: str, payload: dict) -> None:
        await self.send(path, json.dumps(payload).encode(), {"Content-Type": "application/json"})

    async def head(self) -> tuple[int, dict]:
        status_line = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.chunked = headers.get("transfer-encoding") == "chunked"
        self.left = int(headers.get("content-length", 0))
        return status, headers

    async def piece(self) -> bytes:
        """The body's next piece (a chunk, or all of a sized body); b"" at its end."""
        if not self.chunked:
            data, self.left = await asyncio.wait_for(self.reader.readexactly(self.left), IO_TIMEOUT), 0
            return data
        size = int((await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)).split(b";")[0], 16)
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), IO_TIMEOUT)
        return data[:-2]

    async def body(self) -> bytes:
        parts = []
        while part := await self.piece():
            parts.append(part)
        return b"".join(parts)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()  # (gone: no goodbye)
        self.reader = self.writer = None


class Soak:
    """The clients of each kind, and what they saw."""

    def __init__(self, port: int, prompt: str, rng: random.Random):
        self.port, self.prompt, self.rng = port, prompt, rng
        self.counts: Counter = Counter()  # (kind, outcome) -> requests
        self.problems: list[str] = []

    def note(self, kind: str, outcome: str) -> None:
        self.counts[kind, outcome] += 1

    async def run(self, seconds: float, clients: int) -> None:
        deadline = time.monotonic() + seconds
        kinds = [self.prefill, self.mid_stream, self.before_first, self.slow_reader, self.abandoned,
                 self.evaluate, self.bad, self.whole]

        async def loop(kind) -> None:
            while time.monotonic() < deadline:
                c = Client(self.port)
                try:
                    await kind(c)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as e:
                    self.note(kind.__name__, f"client error {type(e).__name__}")
                finally:
                    c.close()
                await asyncio.sleep(self.rng.uniform(0.0, 2 * PAUSE))

        await asyncio.gather(*(loop(kind) for kind in kinds for _ in range(clients)))

    async def stream(self, c: Client, payload: dict, kind: str) -> bool:
        """Send a streaming /generate; False (noted) when it is not answered 200."""
        await c.post_json("/generate", {**payload, "stream": True})
        status, _ = await c.head()
        if status != 200:
            self.note(kind, f"status {status}")
            self.problems.append(f"{kind}: status {status}: {(await c.body())[:200]!r}")
            return False
        return True

    async def prefill(self, c: Client) -> None:
        await c.post_json("/generate", {"prompt": self.prompt, "length": 200, "num_samples": 16, "stream": True})
        await asyncio.sleep(self.rng.uniform(0.0, 0.5))
        self.note("prefill", "gone")

    async def mid_stream(self, c: Client) -> None:
        if await self.stream(c, {"prompt": "The ", "length": 3000}, "mid_stream"):
            for _ in range(self.rng.randint(1, 30)):
                if not await c.piece():
                    break
            self.note("mid_stream", "gone")

    async def before_first(self, c: Client) -> None:
        await c.post_json("/generate", {"prompt": "The ", "length": 3000, "stream": True})
        self.note("before_first", "gone")

    async def slow_reader(self, c: Client) -> None:
        await c.post_json("/generate", {"prompt": "The ", "length": 4000, "stream": True})
        until = time.monotonic() + self.rng.uniform(0.5, 4.0)
        while time.monotonic() < until:
            if not await asyncio.wait_for(c.reader.read(300), IO_TIMEOUT):
                break
            await asyncio.sleep(0.2)
        self.note("slow_reader", "gone")

    async def abandoned(self, c: Client) -> None:
        await c.post_json("/generate", {"prompt": "The ", "length": 5000, "num_samples": 4})
        try:
            await asyncio.wait_for(c.head(), self.rng.uniform(0.1, 1.5))
            self.note("abandoned", "answered first")
        except asyncio.TimeoutError:
            self.note("abandoned", "gone")

    async def evaluate(self, c: Client) -> None:
        texts = [self.prompt[k : k + 300] for k in range(64)]
        await c.post_json("/evaluate", {"texts": texts})
        try:
            status, _ = await asyncio.wait_for(c.head(), self.rng.uniform(0.05, 1.0))
            self.note("evaluate", f"status {status}")
        except asyncio.TimeoutError:
            self.note("evaluate", "gone")

    async def bad(self, c: Client) -> None:
        """One misbehaving request, chosen at random; its status must be the expected one."""
        json_type = {"Content-Type": "application/json"}
        cases = {
            "too large (declared)": (lambda: c.send("/generate", b"{", {**json_type, "Content-Length": "1200000"}),
                                     413),
            "too large (chunked)": (lambda: self.chunked_body(c, 1_000_001), 413),
            "not JSON": (lambda: c.send("/generate", b'{"length": ', json_type), 400),
            "text/plain": (lambda: c.send("/generate", b'{"length": 5}', {"Content-Type": "text/plain"}), 415),
            "no Content-Type": (lambda: c.send("/generate", b'{"length": 5}'), 415),
            "foreign Host": (lambda: c.send("/generate", b'{"length": 5}', {**json_type, "Host": "rebound.example"}),
                             400),
            "foreign Origin": (lambda: c.send("/generate", b'{"length": 5}',
                                              {**json_type, "Origin": "http://evil.example"}), 403),
            "endless body": (lambda: c.send("/generate", b'{"length": 5', {**json_type, "Content-Length": "1000"}),
                             408),
        }
        name = self.rng.choice(sorted(cases))
        send, expected = cases[name]
        await send()
        status, _ = await c.head()
        self.note("bad", f"{name}: {status}")
        if status != expected:
            self.problems.append(f"{name}: status {status}, expected {expected}: {(await c.body())[:200]!r}")

    async def chunked_body(self, c: Client, size: int) -> None:
        """``size`` bytes of spaces in chunks without a declared length, and no last chunk: the
        server reads them all (nothing left unread when it closes) and refuses at the limit."""
        await c.send("/generate", None, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        while size > 0:
            piece = b" " * min(size, 65536)
            size -= len(piece)
            c.writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await asyncio.wait_for(c.writer.drain(), IO_TIMEOUT)

    async def whole(self, c: Client) -> None:
        if await self.stream(c, {"prompt": "The ", "length": 300, "seed": self.rng.randrange(10**6)}, "whole"):
            body = await c.body()
            if b"event: done" in body:
                self.note("whole", "done")
            else:
                self.problems.append(f"a whole request ended without its done event: {body[-200:]!r}")


async def get_json(port: int, path: str) -> dict:
    c = Client(port)
    try:
        await c.send(path, method="GET")
        await c.head()
        return json.loads(await c.body())
    finally:
        c.close()


async def plain(port: int, payload: dict) -> dict:
    c = Client(port)
    try:
        await c.post_json("/generate", payload)
        status, _ = await c.head()
        body = json.loads(await c.body())
        if status != 200:
            raise RuntimeError(f"/generate answered {status}: {body}")
        return body
    finally:
        c.close()


async def speed(port: int, length: int) -> float:
    """Tokens per second of one fresh plain request, best of 3."""
    best = 0.0
    for k in range(3):
        start = time.perf_counter()
        await plain(port, {"prompt": "The ", "length": length, "seed": k})
        best = max(best, length / (time.perf_counter() - start))
    return best


async def drained(port: int, seconds: float) -> tuple[dict, float]:
    """/healthz once it shows no stream, no slot and no queued request (or after ``seconds``), and the wait."""
    start = time.monotonic()
    while True:
        health = await get_json(port, "/healthz")
        waited = time.monotonic() - start
        if not (health["streams"] or health["admitted"] or health["queued"]) or waited > seconds:
            return health, waited
        await asyncio.sleep(0.1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def start_server(args) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "textrnn", "serve", "--host", HOST, "--port", "0", "--checkpoint", args.checkpoint,
           "--body-timeout", "2", "--max-length", "10000"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        sys.exit(f"the server did not start: {line!r}")
    print(line.strip())
    return proc, int(found.group(1))


async def soak(args, proc: subprocess.Popen, port: int) -> list[str]:
    """The warm-up, the soak and the checks; the checks that failed."""
    rng = random.Random(args.seed)
    prompt = "The " + (await plain(port, {"prompt": "The ", "length": 600, "seed": 0}))["samples"][0]["text"]
    await Soak(port, prompt, rng).run(args.warmup, args.clients)  # (the allocators reach their high-water marks)
    health, _ = await drained(port, args.drain_wait)
    rss_before, speed_before = rss_mb(proc.pid), await speed(port, args.speed_length)
    print(f"after the warm-up ({args.warmup:.0f} s): RSS {rss_before:.1f} MB, a fresh request "
          f"{speed_before:.0f} tokens/s, /healthz {health}")

    load = Soak(port, prompt, rng)
    start = time.monotonic()
    await load.run(args.duration, args.clients)
    print(f"soak: {time.monotonic() - start:.1f} s, {args.clients} client(s) of each kind, "
          f"{sum(load.counts.values())} requests; RSS right after: {rss_mb(proc.pid):.1f} MB")
    for (kind, outcome), n in sorted(load.counts.items()):
        print(f"  {kind:13s} {outcome:40s} {n:6d}")

    health, waited = await drained(port, args.drain_wait)
    rss_after, speed_after = rss_mb(proc.pid), await speed(port, args.speed_length)
    growth, ratio = rss_after / rss_before - 1, speed_after / speed_before
    print(f"/healthz {waited:.1f} s after the soak: {health}")
    print(f"RSS: {rss_before:.1f} MB after the warm-up, {rss_after:.1f} MB after the soak ({growth:+.1%}; "
          f"bar: within {args.rss_tolerance:.0%})")
    print(f"a fresh request: {speed_before:.0f} tokens/s before, {speed_after:.0f} after (x{ratio:.2f}; "
          f"bar: >= x{args.min_speed_ratio})")
    failed = [f"refusal or whole request: {p}" for p in load.problems[:10]]
    if health["streams"] or health["admitted"] or health["queued"]:
        failed.append(f"/healthz still counts streams, slots or queued requests: {health}")
    if abs(growth) > args.rss_tolerance:
        failed.append(f"RSS changed by {growth:+.1%}")
    if ratio < args.min_speed_ratio:
        failed.append(f"a fresh request is x{ratio:.2f} as fast as before")
    if not load.counts["whole", "done"]:
        failed.append("no whole request was served during the soak")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="english-char", help="the language model to serve")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of misbehaving clients")
    parser.add_argument("--clients", type=int, default=2, help="clients of each kind at once")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of the same load before the baseline")
    parser.add_argument("--drain-wait", type=float, default=10.0, help="seconds the server may take to drain")
    parser.add_argument("--speed-length", type=int, default=2000, help="tokens of the speed request")
    parser.add_argument("--min-speed-ratio", type=float, default=0.8)
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--threads", type=int, help="the server's --threads [default: its default]")
    parser.add_argument("--seed", type=int, default=0, help="of the clients' random choices")
    args = parser.parse_args()
    proc, port = start_server(args)
    try:
        failed = asyncio.run(asyncio.wait_for(soak(args, proc, port), args.warmup + args.duration + 300))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in failed:
        print(f"FAILED: {f}")
    print("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
