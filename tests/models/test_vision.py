"""Vision encoders: every family builds from a tiny config, gives tokens, freezes, did-you-mean."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from medmllm.errors import UnknownNameError
from medmllm.models.vision import VISION_ENCODERS, EncoderConfig, build_encoder

FAMILIES = ["resnet", "vit", "clip-vit", "siglip", "dinov2"]


@pytest.mark.parametrize("name", FAMILIES)
def test_family_builds_and_encodes(name: str) -> None:
    enc = build_encoder(EncoderConfig(name=name, image_size=32, hidden_size=16))
    pixels = enc.preprocess([Image.new("RGB", (50, 30), (20, 40, 60))])
    assert pixels.shape == (1, 3, 32, 32)
    tokens = enc(pixels)
    assert tokens.shape == (1, enc.num_tokens, enc.hidden_size)
    assert all(not p.requires_grad for p in enc.parameters())  # frozen by default


def test_pooled_and_trainable() -> None:
    enc = build_encoder(EncoderConfig(name="vit", image_size=32, output="pooled", frozen=False))
    assert enc.num_tokens == 1
    out = enc(torch.zeros(2, 3, 32, 32))
    out.sum().backward()
    assert any(p.grad is not None for p in enc.parameters())


def test_fingerprint_changes_with_preprocessing() -> None:
    torch.manual_seed(0)
    a = build_encoder(EncoderConfig(name="vit", image_size=32))
    torch.manual_seed(0)
    b = build_encoder(EncoderConfig(name="vit", image_size=32))
    assert a.fingerprint() == b.fingerprint()
    b.processor.image_mean = [0.1, 0.1, 0.1]
    assert a.fingerprint() != b.fingerprint()


def test_unknown_encoder_did_you_mean() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'siglip'"):
        build_encoder({"name": "siglp"})
    assert {"mobilenet-v2", "dinov2-small", *FAMILIES} <= set(VISION_ENCODERS.names())


@pytest.mark.parametrize(("name", "full", "pooled"), [("vit", 17, 5), ("resnet", 64, 4)])
def test_pool_grid_keeps_cls_and_averages_patches(name: str, full: int, pooled: int) -> None:
    # vit at 64 px / patch 16: CLS + 4x4 patches -> CLS + 2x2; the tiny resnet: 8x8 map -> 2x2
    enc = build_encoder(EncoderConfig(name=name, image_size=64, pool_grid=2))
    assert build_encoder(EncoderConfig(name=name, image_size=64)).num_tokens == full
    assert enc.num_tokens == pooled


def test_pool_patch_grid_values() -> None:
    from medmllm.models.vision import pool_patch_grid

    cls = torch.full((1, 1, 1), 9.0)
    grid = torch.arange(16.0).reshape(1, 16, 1)  # a 4x4 grid, row-major
    out = pool_patch_grid(torch.cat([cls, grid], dim=1), 2)
    assert out.flatten().tolist() == [9.0, 2.5, 4.5, 10.5, 12.5]
    assert pool_patch_grid(grid, 1).flatten().tolist() == [7.5]  # no CLS: grid only
    with pytest.raises(Exception, match="square patch grid"):
        pool_patch_grid(torch.zeros(1, 7, 1), 2)
