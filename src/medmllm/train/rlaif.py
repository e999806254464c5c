"""RLAIF: a judge model labels pairs of the policy's own sampled answers; the pairs train DPO.

1. The policy (base model, plus ``adapter`` if given) samples two answers per prompt through the
   :class:`~medmllm.models.generator.Generator` interface (hf backend, seeded sampling).
2. A judge — any Generator: the embedded model, a local GGUF, or a stronger model behind an
   OpenAI-compatible server — is asked which answer is better ("1" or "2"). Ties (identical
   samples) and unparseable verdicts are dropped and counted.
3. The labelled pairs (``pairs.jsonl`` in the run folder, reused on a rerun) train DPO in
   ``<output_dir>/dpo`` with the same settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medmllm.errors import DataFormatError
from medmllm.models.generator import Generator, LoglikelihoodRequest
from medmllm.train.core import _atomic_write_json, prepare_run_dir, seed_everything
from medmllm.train.data import DataConfig, load_dataset
from medmllm.train.dpo import DPORunConfig
from medmllm.train.dpo import train as train_dpo

PAIRS_FILE = "pairs.jsonl"
JUDGE_PROMPT = (
    "You are grading two answers to a medical question.\n\nQuestion: {prompt}\n\n"
    "Answer 1: {a}\n\nAnswer 2: {b}\n\n"
    "Which answer is more accurate, safe and helpful? Reply with the number 1 or 2 only."
)


class JudgeConfig(BaseModel):
    """The judge Generator (any backend)."""

    model_config = ConfigDict(extra="forbid")

    backend: str = Field("hf", description="Generator backend: hf, llamacpp or openai.")
    model: str | None = Field(None, description="Model id/path (None: the embedded model).")
    base_url: str | None = Field(None, description="Server URL for the openai backend.")
    mode: Literal["score", "generate"] = Field(
        "score",
        description="score: compare the judge's log-probabilities of answering 1 vs 2 (always a "
        "verdict; needs log-likelihood scoring: hf, llamacpp, vLLM); generate: parse the first 1 "
        "or 2 of its reply (any chat model, e.g. an API-only judge).",
    )
    max_tokens: int = Field(4, ge=1, description="Tokens the judge may answer with (generate).")


class RLAIFRunConfig(DPORunConfig):
    """RLAIF settings: prompts, sampling, the judge; DPO settings for the training step."""

    data: DataConfig = Field(
        default_factory=lambda: DataConfig(builder="medquad_ift", limit=16),
        description="Rows whose 'prompt' the policy answers (completions are ignored).",
    )
    judge: JudgeConfig = Field(default_factory=JudgeConfig, description="The judge model.")
    max_new_tokens: int = Field(48, ge=1, description="Tokens per sampled policy answer.")
    temperature: float = Field(0.9, gt=0, description="Policy sampling temperature.")


def _verdict(text: str) -> int | None:
    match = re.search(r"[12]", text)
    return int(match.group()) if match else None


def label_pairs(
    prompts: list[str], policy: Generator, judge: Generator, config: RLAIFRunConfig
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Sample two answers per prompt from ``policy`` and let ``judge`` pick the better one."""
    pairs: list[dict[str, str]] = []
    stats = {"prompts": len(prompts), "ties": 0, "unparsed": 0}
    for i, prompt in enumerate(prompts):
        msgs = [{"role": "user", "content": prompt}]
        answers = [
            policy.chat(
                msgs,
                max_tokens=config.max_new_tokens,
                temperature=config.temperature,
                seed=config.seed * 1000 + 2 * i + k,
            ).text.strip()
            for k in range(2)
        ]
        if answers[0] == answers[1]:
            stats["ties"] += 1
            continue
        question = JUDGE_PROMPT.format(prompt=prompt, a=answers[0], b=answers[1])
        if config.judge.mode == "score":
            context = f"{question}\nBetter answer:"
            one, two = judge.loglikelihood(
                [LoglikelihoodRequest(context, " 1"), LoglikelihoodRequest(context, " 2")]
            )
            verdict: int | None = 1 if one >= two else 2
        else:
            reply = judge.chat(
                [{"role": "user", "content": question}],
                max_tokens=config.judge.max_tokens,
                temperature=0.0,
            )
            verdict = _verdict(reply.text)
        if verdict is None:
            stats["unparsed"] += 1
            continue
        chosen, rejected = (answers[0], answers[1]) if verdict == 1 else (answers[1], answers[0])
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs, stats


def train(
    config: RLAIFRunConfig,
    *,
    overwrite: bool = False,
    judge: Generator | None = None,
    policy: Generator | None = None,
) -> dict[str, Any]:
    """Label the policy's own answer pairs with the judge, then run DPO on them.

    Args:
        config: the run config.
        overwrite: start the run folder over.
        judge / policy: ready Generators (default: built from ``config.judge`` / the base model).
    """
    from medmllm.models.generator import load_generator
    from medmllm.train.recipe import resolve_base_model

    prompts = [r["prompt"] for r in load_dataset(config.data, "prompt_completion").rows]
    run_dir = prepare_run_dir(config.output_dir, config, overwrite=overwrite)
    pairs_path = run_dir / PAIRS_FILE
    stats_path = run_dir / "pairs_stats.json"
    if not pairs_path.is_file():
        seed_everything(config.seed)
        if policy is None:
            policy = load_generator("hf", config.adapter or resolve_base_model(config.model))
        if judge is None:
            options: dict[str, Any] = (
                {"base_url": config.judge.base_url} if config.judge.base_url else {}
            )
            judge = load_generator(config.judge.backend, config.judge.model, **options)
        pairs, stats = label_pairs(prompts, policy, judge, config)
        if not pairs:
            raise DataFormatError(
                f"the judge labelled no pairs ({stats})",
                hint="use more prompts (data.limit), a higher temperature or another judge",
            )
        tmp = pairs_path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
        tmp.replace(pairs_path)
        _atomic_write_json(stats_path, {**stats, "pairs": len(pairs)})
    dpo_fields = set(DPORunConfig.model_fields) - {"data", "output_dir"}
    dpo_config = DPORunConfig(
        **{k: getattr(config, k) for k in dpo_fields},
        data=DataConfig(path=str(pairs_path)),
        output_dir=Path(run_dir) / "dpo",
    )
    result = train_dpo(dpo_config, overwrite=overwrite)
    result["pairs"] = json.loads(stats_path.read_text())
    _atomic_write_json(run_dir / "result.json", result)
    return result
