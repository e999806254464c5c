"""Generation and scoring speed of each backend on the embedded model.

Measures, in one run on the same GGUF weights:
  * generation tokens/s and time-to-first-token (greedy, fixed medical prompts) for
    ``llamacpp``, ``hf`` and ``openai`` (llama-cpp-python's server on 127.0.0.1);
  * log-likelihood requests/s on MedMCQA-style option scoring, with the shared-context /
    shared-prefix reuse on, and with it off (cache cleared before every request), zero-shot and
    5-shot, giving the speed-up ratio that reuse buys.

Usage: ``python bench/generation.py [--questions 40] [--gen-tokens 96]``
Writes ``bench/results/generation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rich.console import Console
from rich.table import Table

from _common import write_json
from medmllm.config import shared_data_dir
from medmllm.errors import MedMLLMError
from medmllm.models.defaults import resolve_model_path
from medmllm.models.generator import LoglikelihoodRequest, load_generator
from medmllm.models.llama_server import start_llama_server
from medmllm.provenance import environment

PROMPTS = [
    "What is the first-line drug treatment for type 2 diabetes?",
    "List three common symptoms of iron-deficiency anaemia.",
    "How does a beta blocker lower blood pressure?",
    "When should a person with a headache seek emergency care?",
]
console = Console()


def mcqa_requests(n: int, shots: int) -> list[LoglikelihoodRequest]:
    path = shared_data_dir() / "mcqa" / "medmcqa_dev.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    exemplars, questions = rows[:shots], rows[shots : shots + n]

    def block(row: dict, with_answer: bool) -> str:
        options = "\n".join(f"{k}. {v}" for k, v in row["options"].items())
        answer = f" {row['answer']}\n\n" if with_answer else ""
        return f"Question: {row['question']}\n{options}\nAnswer:{answer}"

    prefix = "".join(block(r, True) for r in exemplars)
    return [
        LoglikelihoodRequest(prefix + block(q, False), f" {letter}")
        for q in questions
        for letter in q["options"]
    ]


def bench_generation(gen, max_tokens: int) -> dict:
    gen.chat([{"role": "user", "content": "Hello"}], max_tokens=4)  # warm-up
    rates, ttfts, tokens = [], [], 0
    for prompt in PROMPTS:
        c = gen.chat([{"role": "user", "content": prompt}], max_tokens=max_tokens)
        decode_s = c.latency_s - (c.ttft_s or 0.0)
        if c.usage.completion_tokens > 1 and decode_s > 0:
            rates.append((c.usage.completion_tokens - 1) / decode_s)
        ttfts.append(c.ttft_s or c.latency_s)
        tokens += c.usage.completion_tokens
    return {
        "tokens_per_s": round(statistics.median(rates), 2) if rates else None,
        "ttft_s_median": round(statistics.median(ttfts), 4),
        "completion_tokens": tokens,
        "prompts": len(PROMPTS),
    }


def bench_loglikelihood(gen, requests: list[LoglikelihoodRequest], reuse: bool) -> dict:
    gen.clear_cache()
    start = time.perf_counter()
    if reuse:
        scores = gen.loglikelihood(requests)
    else:
        scores = []
        for req in requests:
            gen.clear_cache()
            scores += gen.loglikelihood([req])
    elapsed = time.perf_counter() - start
    return {
        "requests": len(requests),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(requests) / elapsed, 2),
        "scores": scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=40, help="MCQA questions to score")
    parser.add_argument("--gen-tokens", type=int, default=96, help="tokens per generation")
    args = parser.parse_args()

    gguf = resolve_model_path(None)
    zero = mcqa_requests(args.questions, shots=0)
    five = mcqa_requests(args.questions, shots=5)
    results: dict = {"model": gguf.name, "questions": args.questions, "backends": {}}
    server = start_llama_server(gguf)
    url = server.base_url
    try:
        for name, options in (("llamacpp", {}), ("hf", {}), ("openai", {"base_url": url})):
            console.rule(f"[bold]{name}")
            load_start = time.perf_counter()
            gen = load_generator(name, None, **options)
            row: dict = {"load_s": round(time.perf_counter() - load_start, 2)}
            row["generation"] = bench_generation(gen, args.gen_tokens)
            console.print(f"generation: {row['generation']}")
            for label, reqs in (("zero_shot", zero), ("five_shot", five)):
                try:
                    on = bench_loglikelihood(gen, reqs, reuse=True)
                    off = bench_loglikelihood(gen, reqs, reuse=False)
                except MedMLLMError as exc:
                    row[f"loglikelihood_{label}"] = {"unavailable": str(exc)}
                    console.print(f"loglikelihood {label}: unavailable: {exc.message}")
                    break
                max_diff = max(
                    abs(a - b) for a, b in zip(on.pop("scores"), off.pop("scores"), strict=True)
                )
                row[f"loglikelihood_{label}"] = {
                    "with_reuse": on,
                    "without_reuse": off,
                    "speedup": round(on["requests_per_s"] / off["requests_per_s"], 2),
                    "max_abs_score_diff": round(max_diff, 5),
                }
                console.print(f"loglikelihood {label}: {row[f'loglikelihood_{label}']}")
            gen.close()
            results["backends"][name] = row
    finally:
        server.stop()

    table = Table(title="backends on the embedded model (same GGUF)")
    for col in (
        "backend",
        "load s",
        "gen tok/s",
        "TTFT s",
        "LL 0-shot req/s (reuse / none)",
        "LL 5-shot req/s (reuse / none)",
    ):
        table.add_column(col)
    for name, row in results["backends"].items():

        def ll(key: str, r: dict = row) -> str:
            d = r.get(key, {})
            if "with_reuse" not in d:
                return "n/a"
            return (
                f"{d['with_reuse']['requests_per_s']} / {d['without_reuse']['requests_per_s']}"
                f" (×{d['speedup']})"
            )

        table.add_row(
            name,
            str(row["load_s"]),
            str(row["generation"]["tokens_per_s"]),
            str(row["generation"]["ttft_s_median"]),
            ll("loglikelihood_zero_shot"),
            ll("loglikelihood_five_shot"),
        )
    console.print(table)
    results["environment"] = environment(extra=("gguf",))
    path = write_json("generation.json", results)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
