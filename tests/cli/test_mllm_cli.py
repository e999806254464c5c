"""Multimodal CLI as users run it: train a model, ask about a VQA-RAD image and a synthetic DICOM,
evaluate it with the image-blind control; bad inputs give one `error:` line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.models.dicom_fixtures import write_dicom

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, "-m", "medmllm.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def _bad(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "error:" in proc.stderr + proc.stdout
    assert fragment in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_ask_bad_images(tmp_path: Path) -> None:
    _bad(run("ask", "--image", str(tmp_path / "nope.png"), "Fracture?"), "does not exist")
    corrupt = tmp_path / "c.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not a jpeg")
    _bad(run("ask", "--image", str(corrupt), "Fracture?"), "corrupt")
    empty_dcm = write_dicom(tmp_path / "sr.dcm", with_pixels=False)
    _bad(run("ask", "--image", str(empty_dcm), "Fracture?"), "no pixel data")


def test_text_only_model_refuses_an_image(tmp_path: Path) -> None:
    from medmllm.models.mllm import MedMLLM, MLLMConfig

    model = MedMLLM.build(MLLMConfig.tiny("vit", "linear", size=32))
    model.llm.save_pretrained(tmp_path / "llm")
    model.tokenizer.save_pretrained(tmp_path / "llm")
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    proc = run("ask", "-b", "hf", "-m", str(tmp_path / "llm"), "--image", str(image), "Fracture?")
    _bad(proc, "text-only")


def test_mismatched_checkpoint_folder(tmp_path: Path) -> None:
    from medmllm.models.mllm import MedMLLM, MLLMConfig

    folder = MedMLLM.build(MLLMConfig.tiny("vit", "perceiver", size=32)).save_pretrained(
        tmp_path / "m"
    )
    cfg = json.loads((folder / "config.json").read_text())
    cfg["mllm"]["aligner"]["num_queries"] = 9
    (folder / "config.json").write_text(json.dumps(cfg))
    _bad(run("ask", "-b", "hf", "-m", str(folder), "Fracture?"), "do not match")


def test_train_unknown_encoder(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {encoder: {name: vitt}, llm: {tiny: true}}\nprogress: false\n")
    _bad(run("train", "mllm", "-c", str(cfg), "-o", str(tmp_path / "r")), "Did you mean 'vit'")


@pytest.mark.slow
def test_train_then_ask_about_vqa_rad_and_dicom_then_eval(
    shared_data: Path, tmp_path: Path
) -> None:
    """Acceptance: a model trained by `medmllm train mllm` answers about a VQA-RAD image and a
    synthetic DICOM; `medmllm eval` reports the image gain over a blank-image control."""
    align = tmp_path / "align"
    proc = run(
        "train", "mllm", "-c", "configs/train/mllm_align_cpu.yaml", "-o", str(align),
        "--max-steps", "4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    inst = tmp_path / "instruct"
    proc = run(
        "train", "mllm", "-c", "configs/train/mllm_instruct_cpu.yaml", "-o", str(inst),
        "--init-from", str(align / "model"), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["losses"][-1] < summary["losses"][0]
    model = str(inst / "model")
    image = sorted((shared_data / "vqa/vqa_rad/images").iterdir())[0]
    for picture in (image, write_dicom(tmp_path / "ct.dcm", slope=1, intercept=-1024)):
        proc = run("ask", "-b", "hf", "-m", model, "--image", str(picture), "--json",
                   "Is there a fracture?")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        answer = json.loads(proc.stdout.strip().splitlines()[-1])["answer"]
        assert answer.strip()
    out = tmp_path / "eval"
    proc = run(
        "eval", "-t", "vqa_rad", "-b", "hf", "-m", model, "--mode", "gen",
        "--limit", "12", "-o", str(out), "-q", "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    section = results["tasks"]["vqa_rad"]
    gain = section["blind_control"]["image_gain"]["vqa_closed_accuracy"]
    assert len(gain["ci"]) == 2 and section["majority_baseline"]
    assert "Image-blind control" in (out / "report.html").read_text()


@pytest.mark.slow
def test_embedded_smollm2_mllm_answers(tmp_path: Path) -> None:
    """The default LLM (embedded SmolLM2 dequantised to HF) behind a tiny encoder + projector."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
        rows.append({"image": f"{i}.png", "prompt": "Is there a fracture?", "target": "no"})
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "stage: instruct\nmodel: {encoder: {name: vit, image_size: 32}, llm: {model_id: null}}\n"
        f"data: {{kind: jsonl, path: {tmp_path / 'd.jsonl'}}}\nmax_steps: 2\nbatch_size: 2\n"
        "lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}\n"
        "learning_rate: 1.0e-4\nsave_steps: 2\nprogress: false\n"
    )
    proc = run("train", "mllm", "-c", str(cfg), "-o", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "held apart: 1 rows on 1 images" in proc.stdout  # 20% of 4 images, rounded
    assert str(tmp_path / "run" / "split.json") in proc.stdout.replace("\n", "")
    proc = run("ask", "-b", "hf", "-m", str(tmp_path / "run/model"), "--image",
               str(tmp_path / "0.png"), "--max-tokens", "8", "Is there a fracture?")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()
