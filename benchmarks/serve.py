"""`textrnn serve` under load: concurrent streaming clients against a real server process.

    python benchmarks/serve.py [--checkpoint english-char] [--clients 1 8 64] [--seconds 20]
                               [--length 200] [--requests 2000] [--threads N] [--event-interval S] [--quick]

Starts `textrnn serve --port 0` (on 127.0.0.1 only; this script sends nothing anywhere else), then:

- for each N in --clients: N clients, each sending streaming /generate requests (--length
  tokens, a seed each) one after another on its own keep-alive connection for --seconds.
  Printed: aggregate generated tokens/s (the tokens of all those requests over the time until
  the last one ended), median and p90 time to first token (request sent -> first text event),
  requests, errors (a non-200 answer, a stream without its `done` event, a broken connection);
- memory: the server's resident set (VmRSS from /proc) after the load above, then every 500 of
  --requests more requests (8 clients; streaming and plain /generate, and /classify when a
  classifier is loaded), to see that it stays flat.

Bars (issue 13): tokens/s with 64 clients >= 10x one client's; median time to first token
< 100 ms with 8 clients; no errors; RSS flat over 2,000 requests. The clients are plain asyncio
streams speaking HTTP/1.1 (no client library), so their own cost stays small beside the server's:
they share the machine with it. --quick: a short run to check the script (1 s per N, 200 requests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, reading chunked and sized bodies."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def post(self, path: str, body: dict, on_chunk=None) -> tuple[int, bytes]:
        """Send ``body`` as JSON; the status and the whole body (``on_chunk`` sees each chunk as it comes)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        data = json.dumps(body).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        status = int((await self.reader.readline()).split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                chunk = await self.reader.readexactly(size)
                await self.reader.readexactly(2)
                parts.append(chunk)
                if on_chunk:
                    on_chunk(chunk)
            await self.reader.readline()
            payload = b"".join(parts)
        else:
            payload = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection") == "close":
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def stream_once(conn: Connection, length: int, seed: int, stats: dict) -> None:
    """One streaming /generate: its time to first text event and its tokens into ``stats``."""
    start = time.perf_counter()
    first = []

    def seen(chunk: bytes) -> None:
        if not first and chunk.startswith(b"data: "):
            first.append(time.perf_counter() - start)

    try:
        status, body = await conn.post("/generate", {"prompt": "The ", "length": length, "seed": seed,
                                                     "stream": True}, seen)
        done = re.search(rb"event: done\ndata: (.*)\n\n", body)
        if status != 200 or not done:
            stats["errors"].append(f"{status} {body[-200:]!r}")
            return
        stats["tokens"] += json.loads(done.group(1))["tokens"]
        stats["ttft"].extend(first)
        stats["requests"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        conn.close()
        stats["errors"].append(repr(e))


async def load(port: int, clients: int, seconds: float, length: int) -> dict:
    """``clients`` clients each streaming requests one after another, starting new ones for
    ``seconds``: tokens/s = the tokens of all of them over the time until the last one ended."""
    stats = {"tokens": 0, "requests": 0, "ttft": [], "errors": []}
    deadline = time.perf_counter() + seconds

    async def client(k: int) -> None:
        conn = Connection(port)
        seed = k * 1_000_000
        while time.perf_counter() < deadline:
            await stream_once(conn, length, seed, stats)
            seed += 1
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    stats["seconds"] = time.perf_counter() - start
    return stats


async def churn(port: int, total: int, classify: bool, report) -> list[str]:
    """``total`` requests from 8 clients (streaming, plain, classify), ``report(done)`` every 500."""
    errors, done = [], 0
    counter = iter(range(total))

    async def client() -> None:
        nonlocal done
        conn = Connection(port)
        for i in counter:
            kind = i % 3 if classify else i % 2
            try:
                if kind == 0:
                    stats = {"tokens": 0, "requests": 0, "ttft": [], "errors": errors}
                    await stream_once(conn, 50, i, stats)
                elif kind == 1:
                    status, body = await conn.post("/generate", {"prompt": "A", "length": 50, "seed": i})
                    if status != 200:
                        errors.append(f"{status} {body[:200]!r}")
                else:
                    status, body = await conn.post("/classify", {"texts": ["a fine film", f"number {i}"]})
                    if status != 200:
                        errors.append(f"{status} {body[:200]!r}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                conn.close()
                errors.append(repr(e))
            done += 1
            if done % 500 == 0:
                report(done)
        conn.close()

    await asyncio.gather(*(client() for _ in range(8)))
    return errors


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(args) -> tuple[subprocess.Popen, int, str]:
    cmd = [sys.executable, "-m", "textrnn", "serve", "--host", HOST, "--port", "0", "--max-streams", "512"]
    for run in args.checkpoint:
        cmd += ["--checkpoint", run]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.event_interval is not None:
        cmd += ["--event-interval", str(args.event_interval)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        sys.exit(f"the server did not start: {line!r}")
    return proc, int(found.group(1)), line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="runs to serve (repeatable) [default: the server's: latest or shipped LM and classifier]")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per number of clients")
    parser.add_argument("--length", type=int, default=200, help="tokens per request")
    parser.add_argument("--requests", type=int, default=2000, help="requests of the memory check")
    parser.add_argument("--threads", type=int, help="the server's --threads [default: its default]")
    parser.add_argument("--event-interval", type=float, help="the server's --event-interval [default: its default]")
    parser.add_argument("--quick", action="store_true", help="1 s per number of clients, 200 requests")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.requests = 1.0, 200
    proc, port, line = start_server(args)
    rates: dict[int, float] = {}
    try:
        print(line)
        classify = "(classifier)" in line
        asyncio.run(load(port, 1, min(2.0, args.seconds), 20))  # warm-up
        for n in args.clients:
            s = asyncio.run(load(port, n, args.seconds, args.length))
            rates[n] = s["tokens"] / s["seconds"]
            ttft = sorted(s["ttft"]) or [float("nan")]
            p90 = ttft[min(len(ttft) - 1, int(0.9 * len(ttft)))]
            print(f"{n:3d} clients: {rates[n]:8.0f} tokens/s  time to first token median "
                  f"{statistics.median(ttft) * 1e3:6.1f} ms, p90 {p90 * 1e3:6.1f} ms  "
                  f"{s['requests']} requests, {len(s['errors'])} errors {s['errors'][:3]}")
        if 1 in rates and max(rates) > 1:
            print(f"tokens/s with {max(rates)} clients / with 1: {rates[max(rates)] / rates[1]:.1f}x (bar: >= 10x)")
        before = rss_mb(proc.pid)
        print(f"server RSS after the load: {before:.1f} MB; {args.requests} more requests:")
        errors = asyncio.run(churn(port, args.requests, classify,
                                   lambda done: print(f"  after {done:5d}: {rss_mb(proc.pid):.1f} MB", flush=True)))
        after = rss_mb(proc.pid)
        print(f"server RSS {before:.1f} -> {after:.1f} MB ({(after - before) / before * 100:+.1f}%), "
              f"{len(errors)} errors {errors[:3]}")
    finally:
        proc.terminate()
        proc.wait(30)
    if 1 in rates and max(rates) > 1:
        step_alone(args, max(rates))


def step_alone(args, rows: int) -> None:
    """The served LM's bare step (:class:`textrnn.inference.stepper.Stepper`: no HTTP, no sampling), for 1
    row and for ``rows``, timed here after the server has stopped: the most that batching ``rows``
    streams can gain on this machine, beside which the ratio above is to be read."""
    import torch

    import textrnn
    from textrnn.serve.models import default_runs
    from textrnn.inference.stepper import Stepper

    if args.threads:
        torch.set_num_threads(args.threads)
    lms = [t for t in map(textrnn.load, args.checkpoint or default_runs()) if t.checkpoint.task == "lm"]
    if not lms:
        return
    stepper, rates = Stepper(lms[0].model.eval()), {}
    with torch.inference_mode():
        for b in (1, rows):
            ids, state = torch.zeros(b, dtype=torch.long), stepper.initial_state(b)
            for _ in range(20):
                _, state = stepper(ids, state)
            steps, start = max(50, 10_000 // b), time.perf_counter()
            for _ in range(steps):
                _, state = stepper(ids, state)
            rates[b] = b * steps / (time.perf_counter() - start)
    print(f"the model's step alone ({lms[0].path.name}, no HTTP, no sampling): 1 row {rates[1]:,.0f} tokens/s, "
          f"{rows} rows {rates[rows]:,.0f}: {rates[rows] / rates[1]:.1f}x, the most batching can give here")


if __name__ == "__main__":
    main()
