"""Every recipe trains a tiny random Llama for a few steps and saves an adapter or model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import InvalidRequestError, ModelNotFoundError, RunMismatchError
from medmllm.train import cpt, dpo, ift, reward, rlaif, sft
from medmllm.train.recipe import read_result


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    qa = [
        {"prompt": f"which drug is best for the fever {i} ?", "completion": "the answer is A"}
        for i in range(12)
    ]
    pairs = [{"prompt": "which drug ?", "chosen": "A because", "rejected": "B no"}]
    text = [{"text": "the patient has a fever and cough . " * 6}]
    return {
        "qa": _jsonl(tmp_path / "qa.jsonl", qa),
        "pairs": _jsonl(tmp_path / "pairs.jsonl", pairs * 12),
        "text": _jsonl(tmp_path / "text.jsonl", text * 12),
    }


def _common(tiny_model: Path, out: Path) -> dict:
    return {
        "model": str(tiny_model),
        "output_dir": out,
        "max_steps": 2,
        "save_steps": 2,
        "max_length": 64,
        "batch_size": 2,
        "progress": False,
    }


@pytest.mark.parametrize(
    ("module", "cls", "data"),
    [
        (cpt, cpt.CPTRunConfig, "text"),
        (ift, ift.IFTRunConfig, "qa"),
        (sft, sft.SFTRunConfig, "qa"),
        (dpo, dpo.DPORunConfig, "pairs"),
        (reward, reward.RewardRunConfig, "pairs"),
    ],
)
def test_recipe_trains_and_saves(module, cls, data, tiny_model, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    config = cls(**_common(tiny_model, out), data={"path": files[data]})
    result = module.train(config)
    assert result["global_step"] == 2 and result["final_loss"] > 0
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "tokenizer.json").is_file()
    assert (
        read_result(out)["config_hash"] == json.loads((out / "run.json").read_text())["config_hash"]
    )
    assert (out / "checkpoint-2" / "medmllm_checkpoint.json").is_file()


def test_dpo_with_every_prompt_too_long_says_so(tiny_model, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = dpo.DPORunConfig(
        **{**_common(tiny_model, tmp_path / "d"), "max_length": 8}, data={"path": files["pairs"]}
    )
    with pytest.raises(InvalidRequestError, match="max_length=8"):
        dpo.train(config)


def test_sft_with_every_answer_truncated_says_so(tiny_model, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A prompt that fills max_length leaves no answer token: TRL would train at loss 0 and
    change nothing, so the run is refused with the setting to raise."""
    config = sft.SFTRunConfig(
        **{**_common(tiny_model, tmp_path / "s"), "max_length": 8}, data={"path": files["qa"]}
    )
    with pytest.raises(InvalidRequestError, match="max_length=8"):
        sft.train(config)
    assert not (tmp_path / "s" / "adapter").exists()


def test_full_finetune_and_chained_adapter(tiny_model, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = sft.train(
        sft.SFTRunConfig(**_common(tiny_model, tmp_path / "a"), data={"path": files["qa"]})
    )
    chained = sft.SFTRunConfig(
        **_common(tiny_model, tmp_path / "b"),
        data={"path": files["qa"]},
        adapter=first["output"],
        finetune="full",
    )
    result = sft.train(chained)
    assert (Path(result["output"]) / "model.safetensors").is_file()
    # LoRA chaining trains the previous adapter further: it still applies to the original base
    lora = sft.train(chained.model_copy(update={"finetune": "lora", "output_dir": tmp_path / "c"}))
    adapter_cfg = json.loads((Path(lora["output"]) / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(tiny_model)


def test_adapter_loads_in_hf_generator(tiny_model, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medmllm.models.generator import LoglikelihoodRequest, load_generator

    result = sft.train(
        sft.SFTRunConfig(**_common(tiny_model, tmp_path / "a"), data={"path": files["qa"]})
    )
    gen = load_generator("hf", result["output"])
    assert len(gen.loglikelihood([LoglikelihoodRequest("the patient", " has")])) == 1


def test_rlaif_judge_labels_own_samples(tiny_model, files, tmp_path, scripted_generator) -> None:  # type: ignore[no-untyped-def]
    policy = scripted_generator(replies=["the answer is A", "B no", "A because", "A because"])
    judge = scripted_generator(replies=["2", "I cannot tell"])
    config = rlaif.RLAIFRunConfig(
        **_common(tiny_model, tmp_path / "r"),
        data={"path": files["qa"], "limit": 4},
        judge={"mode": "generate"},
    )
    result = rlaif.train(config, judge=judge, policy=policy)
    pairs = [json.loads(x) for x in (tmp_path / "r" / "pairs.jsonl").read_text().splitlines()]
    # prompt 1: "…A" vs "B no", judge says 2 → chosen "B no"; prompt 2: tie → dropped;
    # prompt 3: judge unparsable → dropped; prompt 4: tie.
    assert pairs[0]["chosen"] == "B no" and pairs[0]["rejected"] == "the answer is A"
    assert result["pairs"]["ties"] >= 1 and result["global_step"] == 2
    assert (tmp_path / "r" / "dpo" / "adapter" / "adapter_config.json").is_file()


def test_rlaif_with_real_policy_sampling(tiny_model, files, tmp_path, scripted_generator) -> None:  # type: ignore[no-untyped-def]
    config = rlaif.RLAIFRunConfig(
        **_common(tiny_model, tmp_path / "r"),
        data={"path": files["qa"], "limit": 3},
        max_new_tokens=6,
    )
    result = rlaif.train(config, judge=scripted_generator(replies=["1"]))
    assert result["pairs"]["pairs"] >= 1


def test_rlaif_score_judge_prefers_the_likelier_verdict(scripted_generator) -> None:  # type: ignore[no-untyped-def]
    """The default judge compares log p(" 1") with log p(" 2"): a verdict for every pair."""
    policy = scripted_generator(replies=["first answer", "second answer"])
    judge = scripted_generator(scores={" 1": -3.0, " 2": -0.1})
    config = rlaif.RLAIFRunConfig(data={"path": "unused.jsonl"})
    pairs, stats = rlaif.label_pairs(["What is HbA1c?"], policy, judge, config)
    assert stats["unparsed"] == 0 and judge.n_chats == 0
    assert pairs == [
        {"prompt": "What is HbA1c?", "chosen": "second answer", "rejected": "first answer"}
    ]


def test_missing_base_model_and_resume_refusal(files, tmp_path, tiny_model) -> None:  # type: ignore[no-untyped-def]
    config = sft.SFTRunConfig(
        **{**_common(tiny_model, tmp_path / "x"), "model": str(tmp_path / "no-such-model")},
        data={"path": files["qa"]},
    )
    with pytest.raises(ModelNotFoundError):
        sft.train(config)
    ok = sft.SFTRunConfig(**_common(tiny_model, tmp_path / "y"), data={"path": files["qa"]})
    sft.train(ok)
    with pytest.raises(RunMismatchError, match="max_length"):
        sft.train(ok.model_copy(update={"max_length": 32}))
