"""Serving benchmark: concurrent clients against ``medmllm serve`` vs direct Generator calls.

The embedded model behind ``medmllm serve`` on 127.0.0.1 — by default the CLI in its own process,
as users run it (``--server-mode thread``: the FastAPI app under uvicorn in this process, sharing
the GIL with the clients) — and ``--clients`` concurrent clients each sending ``--requests`` chat
completions (greedy, ``--max-tokens``).
Reported: errors, latency p50 / p99, completion tokens/s, and the server's overhead: wall time
per request through the server vs the same requests made directly on the Generator (the model
runs one request at a time in both cases, so the difference is HTTP + JSON + queueing + guard).

    python bench/serve.py [--clients 16] [--requests 50] [--max-tokens 16]

Load average is recorded; numbers from a loaded machine are not speed claims.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _common import write_json
from medmllm.provenance import environment

QUESTIONS = [
    "What is hypertension?",
    "Name a first-line drug for type 2 diabetes.",
    "What does HbA1c measure?",
    "What is a normal resting heart rate?",
    "What causes iron-deficiency anaemia?",
    "What is the function of the kidneys?",
    "What is asthma?",
    "What does an ECG record?",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(app: Any) -> tuple[Any, str]:
    import uvicorn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.engines import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def start_server_process(args: argparse.Namespace, audit: Path | None, log: Path):
    """`medmllm serve` as users run it, in its own process; returns (process, base URL)."""
    from medmllm.models.llama_server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "medmllm.cli.main", "serve", "--port", str(port), "--no-web"]
    cmd += ["--max-inflight", str(args.clients * 2)]
    if args.backend:
        cmd += ["--backend", args.backend]
    if audit is not None:
        cmd += ["--audit", str(audit)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"medmllm serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("medmllm serve did not start")


async def run_clients(base: str, model: str, clients: int, requests: int, max_tokens: int):
    latencies: list[float] = []
    tokens = 0
    errors: dict[str, int] = {}

    async def client(cid: int) -> None:
        nonlocal tokens
        async with httpx.AsyncClient(timeout=600) as http:
            for i in range(requests):
                body = {
                    "model": model,
                    "messages": [
                        {"role": "user", "content": QUESTIONS[(cid + i) % len(QUESTIONS)]}
                    ],
                    "max_tokens": max_tokens,
                    "temperature": 0,
                }
                start = time.perf_counter()
                try:
                    r = await http.post(base + "/v1/chat/completions", json=body)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    continue
                tokens += r.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return time.perf_counter() - start, latencies, tokens, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument(
        "--backend", default=None, help="default: what `medmllm serve` uses (llamacpp if installed)"
    )
    parser.add_argument("--out", default="serve.json", help="name in bench/results/")
    parser.add_argument(
        "--server-mode",
        choices=["process", "thread"],
        default="process",
        help="process: `medmllm serve` in its own process (as deployed); thread: the app in this "
        "process",
    )
    args = parser.parse_args()

    from medmllm.models.generator import load_generator
    from medmllm.safety.guard import GuardConfig
    from medmllm.serve.app import ServeConfig, create_app

    load_before = os.getloadavg()
    gen = load_generator(args.backend)  # None: the serving default, as `medmllm serve` picks it
    n = args.clients * args.requests
    # Direct baseline: the same requests, one after another (the server also runs one at a time).
    gen.chat([{"role": "user", "content": QUESTIONS[0]}], max_tokens=args.max_tokens)  # warm-up
    direct_lat, direct_tokens = [], 0
    start = time.perf_counter()
    for i in range(n):
        c = gen.chat(
            [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
            max_tokens=args.max_tokens,
            temperature=0.0,
        )
        direct_lat.append(c.latency_s)
        direct_tokens += c.usage.completion_tokens
    direct_wall = time.perf_counter() - start

    audit = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "audit.jsonl"
    # `medmllm serve` as shipped (crisis check on every turn), then with `--audit` (each prompt
    # de-identified with Presidio + spaCy before it is logged: a real per-request cost).
    setups = {"default": GuardConfig(), "with_audit": GuardConfig(audit_path=audit)}
    served: dict[str, dict[str, Any]] = {}
    per_req_direct = direct_wall / n
    for name, guard in setups.items():
        if args.server_mode == "thread":
            app = create_app(ServeConfig(max_inflight=args.clients * 2, guard=guard), generator=gen)
            server, base = start_server(app)
        else:
            log = audit.with_name(f"{name}.log")
            proc, base = start_server_process(args, guard.audit_path, log)
        model = httpx.get(base + "/v1/models").json()["data"][0]["id"]
        # one warm-up request: the model's first call (and, with --audit, the analyzer) is paid
        # once per server, not per request — the direct baseline is warmed up the same way
        httpx.post(
            base + "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": QUESTIONS[0]}],
                  "max_tokens": args.max_tokens, "temperature": 0},
            timeout=600,
        )  # fmt: skip
        wall, lat, tokens, errors = asyncio.run(
            run_clients(base, model, args.clients, args.requests, args.max_tokens)
        )
        if args.server_mode == "thread":
            server.should_exit = True
        else:
            proc.terminate()
            proc.wait(timeout=60)
        served[name] = {
            "errors": errors,
            "n_errors": sum(errors.values()),
            "wall_s": round(wall, 2),
            "latency_p50_s": round(_pct(lat, 0.5), 3) if lat else None,
            "latency_p99_s": round(_pct(lat, 0.99), 3) if lat else None,
            "completion_tokens": tokens,
            "tokens_per_s": round(tokens / wall, 2),
            "requests_per_s": round(n / wall, 3),
            "overhead_vs_direct": round(wall / n / per_req_direct - 1, 4),
            # 504s end requests early, so their wall time says nothing about overhead.
            "valid_for_overhead": not errors,
        }
        print(f"[{name}] {served[name]}", flush=True)
    payload = {
        "benchmark": "serve",
        "backend": gen.backend,
        "server_mode": args.server_mode,
        "model": gen.model_id,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "total_requests": n,
        "max_tokens": args.max_tokens,
        "server": served,
        "direct": {
            "wall_s": round(direct_wall, 2),
            "latency_p50_s": round(statistics.median(direct_lat), 3),
            "completion_tokens": direct_tokens,
            "tokens_per_s": round(direct_tokens / direct_wall, 2),
        },
        "note": "The model runs one request at a time in both modes; latency under 16 clients is "
        "mostly queueing. Overhead = server wall time per request / direct wall time per request "
        "- 1; 'default' is `medmllm serve` as shipped, 'with_audit' adds `--audit` (prompts "
        "de-identified before logging). See load_avg: a loaded machine gives no speed claim.",
        "load_avg_before": list(load_before),
        "load_avg_after": list(os.getloadavg()),
        "environment": environment(),
    }
    path = write_json(args.out, payload)
    for name, row in served.items():
        print(
            f"{name}: {n} requests, {row['n_errors']} errors, p50 {row['latency_p50_s']} s, "
            f"p99 {row['latency_p99_s']} s, {row['tokens_per_s']} tok/s via server vs "
            f"{payload['direct']['tokens_per_s']} direct; overhead {row['overhead_vs_direct']:+.1%}"
        )
    print(f"wrote {path}")
    gen.close()


if __name__ == "__main__":
    main()
