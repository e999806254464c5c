"""Training recipes: one module per stage (cpt, ift, sft, dpo, rlaif/reward, mllm), shared core."""
