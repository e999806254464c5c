#!/usr/bin/env bash
# Quick-start demo: index the built-in starter knowledge pack, then ask grounded questions.
# Runs offline with the embedded models (SmolLM2-135M + MiniLM); ~1-2 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDMLLM="${MEDMLLM:-.venv/bin/medmllm}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== medmllm index starter (53 passages from public guidelines, hybrid bm25 + MiniLM)"
"$MEDMLLM" index starter --quiet

questions=(
  "What should I do if someone is having an asthma attack?"
  "What is the usual first medicine for type 2 diabetes?"
  "How much paracetamol can an adult take in a day?"
)
for question in "${questions[@]}"; do
  echo
  echo "== medmllm ask --index starter \"$question\""
  "$MEDMLLM" ask --index starter -k 2 --max-tokens 80 "$question"
done
