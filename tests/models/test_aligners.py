"""Aligners: one call contract, parameter counts, visual-token budgets, did-you-mean."""

from __future__ import annotations

import pytest
import torch

from medmllm.errors import UnknownNameError
from medmllm.models.aligners import ALIGNERS, AlignerConfig, build_aligner

NAMES = ["linear", "mlp2x_gelu", "qformer", "perceiver", "cross_attn"]


@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str) -> None:
    al = build_aligner(AlignerConfig(name=name, num_queries=5, num_layers=1), 24, 40)
    out = al(torch.randn(2, 17, 24))
    assert out.shape[0] == 2 and out.shape[-1] == 40
    expected = {"qformer": 5, "perceiver": 5, "cross_attn": 0}.get(name, 17)
    assert al.visual_tokens(17) == expected
    if al.splices:
        assert out.shape[1] == expected
    info = al.describe(17)
    assert info["parameters"] == sum(p.numel() for p in al.parameters()) > 0


def test_unknown_aligner_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'qformer'"):
        build_aligner({"name": "qfromer"}, 8, 8)
    assert set(NAMES) <= set(ALIGNERS.names())
