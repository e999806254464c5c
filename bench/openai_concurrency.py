"""Eval questions/s through an OpenAI-compatible server: concurrency 1 vs 8 in the same run.

The server is llama-cpp-python's (``python -m llama_cpp.server``) on 127.0.0.1 serving the
embedded SmolLM2-135M-Instruct GGUF; the client is our ``openai`` backend driven by
``run_eval`` in **generation mode** (``--mode gen``: a chat answer per question, parsed to a
letter). Log-likelihood mode cannot be measured through this server: llama-cpp-python 0.3.36
shifts echoed prompt logprobs by one token, and the backend refuses to score on it (the refusal
is recorded below). With vLLM, ``--mode mc`` goes through the same concurrent, batched path.

Both settings score the same questions with no cache, one after the other, against the same
server process. Writes ``bench/results/openai_concurrency.json`` with
``medmllm.provenance.environment()`` (versions, commit, load).

Usage:
    .venv/bin/python bench/openai_concurrency.py [--questions 24] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._common import write_json  # noqa: E402

SERVER_ARGS = ("--interrupt_requests", "False")


def check_validity(report: dict[str, Any]) -> None:
    """Concurrency must not change the answers: flag a run whose predictions differ."""
    runs = report["runs"]
    same = all(r["predictions"] == runs[0]["predictions"] for r in runs)
    invalid = [r["invalid"] for r in runs]
    report["same_predictions"] = same
    report["valid"] = same
    if not same:
        report["invalid_reason"] = (
            f"predictions differ between concurrency levels (unparseable answers per run: "
            f"{invalid}); the server cut concurrent requests short, so the speed-up is not real"
        )


@contextmanager
def served(gguf: Path) -> Iterator[str]:
    """The base URL of a llama.cpp server on ``gguf`` (the project's one server starter)."""
    try:
        from medmllm.models.llama_server import llama_server  # type: ignore[import-not-found]
    except ImportError:  # branches where the starter still lives in bench/generation.py
        from bench.generation import start_server

        proc, url = start_server(gguf)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        return
    # llama-cpp-python's server interrupts a running request when a new one arrives unless told
    # not to: concurrent requests would come back cut short (seen: 7 of 8 answers empty)
    with llama_server(gguf, extra_args=SERVER_ARGS) as server:
        yield server.base_url


def run_once(
    url: str, concurrency: int, questions: int, max_tokens: int, timeout: float
) -> dict[str, Any]:
    from medmllm.eval.runner import EvalOptions, run_eval
    from medmllm.models.generator import load_generator

    gen = load_generator("openai", base_url=url, concurrency=concurrency, timeout=timeout)
    options = EvalOptions(
        mode="gen", limit=questions, max_tokens=max_tokens, concurrency=concurrency
    )
    started = time.perf_counter()
    res = run_eval(["medmcqa"], gen, options, cache_path=":memory:", report=False)
    wall = time.perf_counter() - started
    gen.close()
    section = res["tasks"]["medmcqa"]
    return {
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "questions_per_s": round(questions / wall, 3),
        "accuracy": section["metrics"]["accuracy"]["value"],
        "majority_baseline": section["majority_baseline"]["accuracy"]["value"],
        "invalid": section["invalid"],
        "predictions": [row.get("pred") for row in section["items"]],
        "load_avg_after": list(os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    parser.add_argument("--timeout", type=float, default=300.0, help="per request (loaded hosts)")
    parser.add_argument("--out", default="openai_concurrency.json", help="name in bench/results/")
    args = parser.parse_args()

    from medmllm.errors import BackendConnectionError, UnsupportedInputError
    from medmllm.models.defaults import resolve_model_path
    from medmllm.models.generator import LoglikelihoodRequest, load_generator
    from medmllm.provenance import environment

    gguf = resolve_model_path(None)
    report: dict[str, Any] = {
        "benchmark": "openai_concurrency",
        "server": f"python -m llama_cpp.server --model {gguf.name} (127.0.0.1, n_ctx 2048)",
        "client": "medmllm openai backend via run_eval, --mode gen (chat), no cache",
        "task": "medmcqa (../shared/data), first --questions items, zero-shot",
        "n_questions": args.questions,
        "max_tokens": args.max_tokens,
        "environment_start": environment(),
        "runs": [],
    }
    with served(gguf) as url:
        warm = load_generator("openai", base_url=url, timeout=args.timeout)
        warm.chat([{"role": "user", "content": "Hello"}], max_tokens=2)  # load, first-call costs
        for level in (int(c) for c in args.concurrency.split(",")):
            print(f"concurrency {level} …", flush=True)
            run = run_once(url, level, args.questions, args.max_tokens, args.timeout)
            print(f"    {run['questions_per_s']} q/s ({run['wall_s']} s)", flush=True)
            report["runs"].append(run)
        try:
            warm.loglikelihood([LoglikelihoodRequest("Question: 2+2=?\nAnswer:", " 4")])
            report["loglikelihood_mode"] = "accepted by this server"
        except UnsupportedInputError as exc:
            report["loglikelihood_mode"] = f"refused: {exc.message}"
        except BackendConnectionError as exc:
            report["loglikelihood_mode"] = f"not probed: {exc.message}"
        warm.close()
    first, last = report["runs"][0], report["runs"][-1]
    report["speedup"] = round(last["questions_per_s"] / first["questions_per_s"], 2)
    check_validity(report)
    report["note"] = (
        "llama-cpp-python's server evaluates one request at a time, so concurrency only overlaps "
        "HTTP/JSON and prompt formatting with generation; a batching server (vLLM) gains far more."
    )
    report["load_avg_end"] = list(os.getloadavg())
    path = write_json(args.out, report)
    print(f"speed-up ×{report['speedup']} · wrote {path}")


if __name__ == "__main__":
    main()
