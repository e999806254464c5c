"""The report app on MTS-Dialog validation rows: ROUGE-L, BLEU, METEOR and a judge.

    python bench/report_app.py --n 5 [--judge-self]

Writes ``bench/results/report_app.json`` (versions, commit, load). The judge is the same
embedded model unless another is configured: a weak judge, reported as such.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import write_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=5, help="Validation rows (of 100).")
    ap.add_argument("--backend", default="llamacpp")
    ap.add_argument("--model", default=None)
    ap.add_argument("--threads", type=int, default=0, help="llama.cpp threads.")
    ap.add_argument("--judge-self", action="store_true", help="Judge with the same model.")
    args = ap.parse_args(argv)

    from medmllm.apps.report import evaluate_mts_dialog
    from medmllm.models.generator import load_generator
    from medmllm.provenance import environment

    data = Path(os.environ.get("MEDMLLM_SHARED_DATA", Path(__file__).parents[2] / "shared/data"))
    path = data / "train" / "mts_dialog" / "mts_dialog_train_val.jsonl"
    load_start = os.getloadavg()
    options = {"n_threads": args.threads} if args.threads and args.backend == "llamacpp" else {}
    gen = load_generator(args.backend, args.model, **options)
    result = evaluate_mts_dialog(gen, path, limit=args.n, judge=gen if args.judge_self else None)
    gen.close()
    payload = {
        "benchmark": "report_app_mts_dialog",
        "model": gen.model_id,
        "backend": args.backend,
        "judge": gen.model_id if args.judge_self else None,
        **result,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "note": "small n on a loaded shared machine; the embedded 135M model is a weak writer "
        "and a weak judge",
        "environment": environment(),
    }
    print(f"wrote {write_json('report_app.json', payload)}")
    print({k: result[k] for k in ("n", "rouge_l", "bleu4", "meteor") if k in result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
