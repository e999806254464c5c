"""Generator backends; each module registers one class in ``medmllm.models.generator.BACKENDS``."""
