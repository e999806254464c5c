"""Training throughput of our ``sft`` recipe vs plain TRL ``SFTTrainer`` defaults; GGUF export.

Part 1 (same data, model, steps, batch size, in the same run; each variant in its own process so
peak memory is its own):
  * ``ours``: ``medmllm.train.sft`` — completion-only loss, best-fit-decreasing packing into
    ``max_length`` blocks, padding-free (position ids, no pad tokens);
  * ``trl_defaults``: ``SFTTrainer`` with ``SFTConfig`` defaults (no packing, padded batches,
    gradient checkpointing on) — only output dir, steps, batch size and learning rate set, and
    ``bf16=False`` (its default bf16 autocast is a GPU setting; both variants run fp32 on CPU).
  Reported: real (non-padding) training tokens per second, optimizer steps per second, peak RSS.
  The model is a random-initialised Llama with the embedded model's tokenizer (vocabulary 49,152)
  so the bench finishes on a CPU; ``--model`` takes any HF folder or id.

Part 2: export time and GGUF size per quantisation for an adapter (``--adapter DIR``).

Usage: ``python bench/train.py [--steps 8] [--adapter runs/x/adapter] [--quants f16,q8_0,q4_0]``
Writes ``bench/results/train.json`` (with load averages: numbers from a loaded machine are not
speed claims).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).resolve().parent / "results"


def _tiny_llama(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from medmllm.train.recipe import resolve_base_model

    tok = AutoTokenizer.from_pretrained(resolve_base_model(None))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _rows(limit: int) -> list[dict[str, str]]:
    from medmllm.train.data import DataConfig, load_dataset

    return load_dataset(DataConfig(builder="mcqa", limit=limit), "prompt_completion").rows


def _variant(name: str, model: str, steps: int, batch: int, max_length: int, out: Path) -> dict:
    """Run one variant in this process; returns tokens/s, steps/s and peak RSS."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    rows = _rows(steps * batch * 8)
    tok = AutoTokenizer.from_pretrained(model)
    net = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    ds = datasets.Dataset.from_list(rows)
    common = {
        "output_dir": str(out / name),
        "max_steps": steps,
        "per_device_train_batch_size": batch,
        "learning_rate": 2e-4,
        "bf16": False,
        "report_to": "none",
        "save_strategy": "no",
        "include_num_input_tokens_seen": "non_padding",
        "disable_tqdm": True,
    }
    if name == "ours":
        from medmllm.train.core import TrainConfig, training_arguments

        cfg = TrainConfig(
            output_dir=out / name,
            max_steps=steps,
            batch_size=batch,
            finetune="full",
            progress=False,
            save_steps=10**6,
        )
        args = training_arguments(
            cfg,
            cls=SFTConfig,
            max_length=max_length,
            packing=True,
            packing_strategy="bfd",
            completion_only_loss=True,
            include_num_input_tokens_seen="non_padding",
            save_strategy="no",
        )
    else:
        args = SFTConfig(**common)

    class Timer(TrainerCallback):
        start = 0.0
        end = 0.0

        def on_step_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            if state.global_step == 1 and not self.start:  # skip step 1 (warm-up)
                self.start = time.perf_counter()
                self.tokens0 = state.num_input_tokens_seen

        def on_train_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.end = time.perf_counter()

    timer = Timer()
    trainer = SFTTrainer(
        model=net, args=args, train_dataset=ds, processing_class=tok, callbacks=[timer]
    )
    trainer.train()
    seconds = timer.end - timer.start
    tokens = trainer.state.num_input_tokens_seen - timer.tokens0
    return {
        "variant": name,
        "steps_timed": steps - 1,
        "seconds": round(seconds, 2),
        "real_tokens": int(tokens),
        "tokens_per_s": round(tokens / seconds, 1),
        "steps_per_s": round((steps - 1) / seconds, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "packing": bool(getattr(args, "packing", False)),
        "gradient_checkpointing": bool(
            getattr(args, "activation_checkpointing", False)
            or getattr(args, "gradient_checkpointing", False)
        ),
        "max_length": args.max_length,
    }


def _export(adapter: Path, quants: list[str], out: Path) -> list[dict[str, Any]]:
    from medmllm.train.export import export_gguf

    rows = []
    for quant in quants:
        start = time.perf_counter()
        info = export_gguf(adapter, out / f"bench.{quant}.gguf", quant=quant)
        rows.append(
            {
                "quant": quant,
                "seconds": round(time.perf_counter() - start, 1),
                "merge_s": info["merge_s"],
                "convert_s": info["convert_s"],
                "gguf_mb": round(info["bytes"] / 1e6, 1),
            }
        )
        Path(info["output"]).unlink()
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--model", default=None, help="HF folder/id (default: tiny random Llama)")
    parser.add_argument("--adapter", type=Path, default=None, help="adapter to export")
    parser.add_argument("--quants", default="f16,q8_0,q4_0,q4_k_m")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medmllm-bench-train"))
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.variant:  # child process: one variant, JSON on the last stdout line
        result = _variant(
            args.variant, args.model, args.steps, args.batch, args.max_length, args.work
        )
        print(json.dumps(result))
        return

    from medmllm.provenance import environment

    load_before = list(os.getloadavg())
    model = args.model or str(_tiny_llama(args.work / "tiny-llama"))
    variants = {}
    for name in ("trl_defaults", "ours"):
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            name,
            "--model",
            model,
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--max-length",
            str(args.max_length),
            "--work",
            str(args.work),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        variants[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(variants[name], flush=True)
    ratio = variants["ours"]["tokens_per_s"] / variants["trl_defaults"]["tokens_per_s"]
    export = _export(args.adapter, args.quants.split(","), args.work) if args.adapter else None
    result = {
        "benchmark": "train",
        "model": args.model or "random-init Llama (hidden 256, 4 layers) + SmolLM2 tokenizer",
        "data": "MCQA training split (mcqa builder), prompt → answer",
        "steps": args.steps,
        "batch_size": args.batch,
        "sft": variants,
        "tokens_per_s_ratio_ours_vs_trl_defaults": round(ratio, 2),
        "export": export,
        "export_adapter": str(args.adapter) if args.adapter else None,
        "load_avg_before": load_before,
        "load_avg_after": list(os.getloadavg()),
        "note": (
            "quiet machine (load below the core count before and after)"
            if max(load_before[0], os.getloadavg()[0]) < (os.cpu_count() or 1)
            else "loaded machine: absolute speeds are not claims; the ratio compares two "
            "processes run back to back under similar load"
        ),
        "environment": environment(),
    }
    RESULTS.mkdir(exist_ok=True)
    tmp = RESULTS / ".train.json.tmp"
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(RESULTS / "train.json")
    print(f"ours vs TRL defaults: {ratio:.2f}x tokens/s")


if __name__ == "__main__":
    main()
