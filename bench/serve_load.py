"""Load on the real server: N concurrent clients against the same requests sent one at a time.

    python bench/serve_load.py [--bundle tiny] [--clients 16] [--seconds 60] [--sequential-seconds 30]
    -> one JSON line per phase, then one summary line:
       {"errors": ..., "status_5xx": ..., "speedup": ..., "p95_s": ..., "ttft_s": ..., "ttfa_s": ..., ...}

`anygpt serve --port 0` is started as its own process (the bundle on its default settings) and
driven over loopback by the official `openai` client (AsyncOpenAI, streaming every request). The
requests cycle through four any-to-any turns:
    caption  a drawn picture in, text out (beam search, as the bundle decodes text)
    speech   text in, a spoken reply out (streamed pcm16 chunks)
    image    text in, a picture out
    asr      a stored voice clip in, its transcript out

    sequential   one client, one request at a time, for --sequential-seconds
    concurrent   --clients clients, each sending its next request as soon as the last one ended,
                 for --seconds (requests still running then are waited for and counted)

Per phase: requests/s, p50/p95 latency, time to the first text token (ttft: any reply's first
content delta) and to the first audio chunk of spoken replies (ttfa), errors by kind and HTTP
status, and the server's peak resident memory (VmHWM). Summary: speedup = concurrent requests/s
over sequential; ttft_s / ttfa_s are medians of the sequential phase (a request alone, what one
user waits), *_load_s the same under the concurrent load; errors and status_5xx count both phases.
Timings on a shared machine are noisy: compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def inputs() -> dict:
    """The requests' media, made here: a drawn picture and a stored voice clip."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 64), (225, 225, 225))
    ImageDraw.Draw(image).rectangle((18, 18, 46, 46), fill=(40, 80, 200))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    clip = (Path(__file__).resolve().parent.parent / "anygpt/serve/voices/kal.flac").read_bytes()
    return {"png": base64.b64encode(buf.getvalue()).decode(), "flac": base64.b64encode(clip).decode()}


def requests(media: dict) -> list[tuple[str, dict]]:
    user = lambda content: [{"role": "user", "content": content}]  # noqa: E731
    return [
        ("caption", dict(modalities=["text"], messages=user([
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + media["png"]}},
            {"type": "text", "text": "Please describe the picture briefly."}]))),
        ("speech", dict(modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"},
                        messages=user("the small dog runs across the green field. Please read the given text."))),
        ("image", dict(modalities=["text", "image"], messages=user("a large red circle in the middle. Please generation an image."))),
        ("asr", dict(modalities=["text"], messages=user([
            {"type": "input_audio", "input_audio": {"data": media["flac"], "format": "flac"}},
            {"type": "text", "text": "Please transcribe the given speech."}]))),
    ]


class Record:
    def __init__(self):
        self.latency, self.ttft, self.ttfa, self.errors, self.status = [], [], [], {}, {}
        self.done = 0

    def error(self, kind: str, status: int | None) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if status is not None:
            self.status[status] = self.status.get(status, 0) + 1


async def one(client, name: str, body: dict, record: Record) -> None:
    import openai

    start = time.perf_counter()
    first_text = first_audio = None
    try:
        stream = await client.chat.completions.create(model="served", stream=True, **body)
        async for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            now = time.perf_counter() - start
            if delta.content and first_text is None:
                first_text = now
            audio = getattr(delta, "audio", None)
            if audio is not None and getattr(audio, "data", None) and first_audio is None:
                first_audio = now
        if name == "speech" and first_audio is None:
            record.error("no_audio", None)
            return
    except openai.APIStatusError as e:
        record.error(type(e).__name__, e.status_code)
        return
    except (openai.APIError, asyncio.TimeoutError) as e:
        record.error(type(e).__name__, None)
        return
    record.latency.append(time.perf_counter() - start)
    record.done += 1
    if first_text is not None:
        record.ttft.append(first_text)
    if first_audio is not None:
        record.ttfa.append(first_audio)


async def phase(url: str, clients: int, seconds: float, reqs) -> tuple[Record, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, timeout=300)
    record = Record()
    end = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        i = k
        while time.perf_counter() < end:
            name, body = reqs[i % len(reqs)]
            await one(client, name, body, record)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    elapsed = time.perf_counter() - started
    await client.close()
    return record, elapsed


async def warm(url: str, reqs) -> None:
    """One request of each kind first: the first of each loads what it needs (codecs, voices)."""
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, timeout=300)
    for name, body in reqs:
        await one(client, name, body, Record())
    await client.close()


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def summary(name: str, record: Record, elapsed: float, pid: int) -> dict:
    return {"phase": name, "requests": record.done, "seconds": round(elapsed, 2),
            "requests_per_s": round(record.done / elapsed, 3), "p50_s": quantile(record.latency, 0.5),
            "p95_s": quantile(record.latency, 0.95), "ttft_s": quantile(record.ttft, 0.5),
            "ttfa_s": quantile(record.ttfa, 0.5), "ttfa_p95_s": quantile(record.ttfa, 0.95),
            "errors": sum(record.errors.values()), "error_kinds": record.errors,
            "status": {str(k): v for k, v in record.status.items()}, "server_peak_rss_mb": peak_rss_mb(pid)}


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def start_server(bundle: str, extra: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    """`anygpt serve` in its own process, its output to `log` (a pipe nobody reads would fill and
    stall it); returns the process and its URL once it listens."""
    cmd = [sys.executable, "-m", "anygpt.cli", "serve", "--bundle", bundle, "--port", "0", *extra]
    out = log.open("w")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        first = log.read_text().split("\n", 1)[0]
        if " on http://" in first:
            return proc, first.split(" on ", 1)[1].split("/ ", 1)[0]
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", default="tiny")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sequential-seconds", type=float, default=30.0)
    parser.add_argument("--server-arg", action="append", default=[], help="passed to anygpt serve (repeatable)")
    args = parser.parse_args()

    log = Path(tempfile.mkdtemp(prefix="anygpt-serve-load-")) / "server.log"
    proc, url = start_server(args.bundle, args.server_arg, log)
    try:
        reqs = requests(inputs())
        asyncio.run(warm(url, reqs))
        seq, seq_s = asyncio.run(phase(url, 1, args.sequential_seconds, reqs))
        first = summary("sequential", seq, seq_s, proc.pid)
        print(json.dumps(first), flush=True)
        conc, conc_s = asyncio.run(phase(url, args.clients, args.seconds, reqs))
        second = summary(f"concurrent_{args.clients}", conc, conc_s, proc.pid)
        print(json.dumps(second), flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"server log: {log}", file=sys.stderr)
    status: dict[int, int] = {}
    for rec in (seq, conc):
        for code, n in rec.status.items():
            status[code] = status.get(code, 0) + n
    print(json.dumps({
        "bundle": args.bundle, "clients": args.clients, "seconds": args.seconds,
        "errors": first["errors"] + second["errors"], "status_5xx": sum(n for c, n in status.items() if c >= 500),
        "speedup": round(second["requests_per_s"] / first["requests_per_s"], 3) if first["requests_per_s"] else None,
        "requests_per_s": second["requests_per_s"], "sequential_requests_per_s": first["requests_per_s"],
        "p50_s": second["p50_s"], "p95_s": second["p95_s"], "ttft_s": first["ttft_s"], "ttfa_s": first["ttfa_s"],
        "ttft_load_s": second["ttft_s"], "ttfa_load_s": second["ttfa_s"],
        "server_peak_rss_mb": second["server_peak_rss_mb"]}))


if __name__ == "__main__":
    main()
