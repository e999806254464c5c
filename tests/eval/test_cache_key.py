"""The eval cache key is the generator's canonical load options (issue 19, part 2).

On the old key (backend + model id) a bfloat16 or quantised re-run, or another server answering
to the same model name, silently read the first run's answers; so did `eval merge`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medmllm.errors import ShardMismatchError
from medmllm.eval.cache import CachedGenerator, CallCache, model_key
from medmllm.eval.runner import EvalOptions, run_eval
from medmllm.eval.shard import merge_shards, run_shard
from medmllm.eval.task import Task
from medmllm.models.generator import LoglikelihoodRequest
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator
from tests.train.conftest import build_tiny_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _task(tmp_path: Path, mcqa_file: Path) -> Task:
    return Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))


def test_hf_dtype_change_misses_the_cache(tmp_path: Path, mcqa_file: Path, tiny_model) -> None:
    """The real hf backend: float32, then bfloat16 on the same cache file → no answer reused."""
    from medmllm.models.generator import load_generator

    cache = tmp_path / "calls.sqlite"
    runs = {}
    for name, dtype in (("fp32", None), ("bf16", "bfloat16"), ("fp32-again", "float32")):
        options = {"dtype": dtype} if dtype else {}
        gen = load_generator("hf", str(tiny_model), **options)
        runs[name] = run_eval(
            [_task(tmp_path, mcqa_file)], gen, EvalOptions(limit=4), cache_path=cache, report=False
        )
    n_requests = 4 * 4
    assert runs["fp32"]["run"]["model_calls"] == n_requests
    assert runs["bf16"]["run"]["model_calls"] == n_requests  # missed: another dtype
    assert runs["fp32-again"]["run"]["model_calls"] == 0  # float32 is the default: same key
    keys = {name: r["model"]["key"] for name, r in runs.items()}
    assert keys["fp32"] == keys["fp32-again"] != keys["bf16"]
    load = runs["bf16"]["model"]["load_options"]
    assert load["dtype"] == "bfloat16" and load["device"] == "cpu" and load["files"]


def test_base_url_and_model_args_enter_the_key() -> None:
    from medmllm.models.backends.openai import OpenAIGenerator

    # a model name given: nothing is asked of the (absent) servers
    a = OpenAIGenerator("llama", base_url="http://127.0.0.1:8001/v1")
    b = OpenAIGenerator("llama", base_url="http://127.0.0.1:8002/v1")
    assert a.load_options()["base_url"] == "http://127.0.0.1:8001/v1"
    assert model_key(a.load_options()) != model_key(b.load_options())
    assert model_key(a.load_options()) == model_key(
        OpenAIGenerator("llama", base_url="http://127.0.0.1:8001/v1/").load_options()
    )
    assert "api_key" not in json.dumps(a.load_options())


def test_a_base_url_change_misses_the_cache(tmp_path: Path) -> None:
    """Two servers under one model name: the second one's answers are computed, not reused."""

    def served(url: str) -> CachedGenerator:
        return CachedGenerator(FakeGenerator(model="m", load_options={"base_url": url}), cache)

    cache = CallCache(tmp_path / "c.sqlite")
    reqs = [LoglikelihoodRequest("Question: x\nAnswer:", " A")]
    first, same, other = (
        served("http://127.0.0.1:8001/v1"),
        served("http://127.0.0.1:8001/v1"),
        served("http://127.0.0.1:8002/v1"),
    )
    for model in (first, same, other):
        model.loglikelihood(reqs)
    assert (first.model_calls, same.model_calls, other.model_calls) == (1, 0, 1)


def test_local_weights_rewritten_in_place_miss(tmp_path: Path, mcqa_file: Path) -> None:
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(b"x" * 10)
    cache = tmp_path / "c.sqlite"
    first = run_eval(
        [_task(tmp_path, mcqa_file)], FakeGenerator(model=str(weights)), cache_path=cache
    )
    (weights / "model.safetensors").write_bytes(b"y" * 11)  # retrained into the same folder
    second = run_eval(
        [_task(tmp_path, mcqa_file)], FakeGenerator(model=str(weights)), cache_path=cache
    )
    assert first["run"]["model_calls"] == second["run"]["model_calls"] == 12 * 4


def test_merge_refuses_shards_of_different_keys(
    tmp_path: Path, mcqa_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _task(tmp_path, mcqa_file)
    monkeypatch.setenv("FAKE_DTYPE", "float32")
    run_shard([t], FakeGenerator(), EvalOptions(shard=(1, 2)), out_dir=tmp_path / "s1")
    monkeypatch.setenv("FAKE_DTYPE", "bfloat16")
    run_shard([t], FakeGenerator(), EvalOptions(shard=(2, 2)), out_dir=tmp_path / "s2")
    with pytest.raises(ShardMismatchError, match=r"model key \(dtype 'float32' vs 'bfloat16'\)"):
        merge_shards([tmp_path / "s1", tmp_path / "s2"], out_dir=tmp_path / "m")
    # the same key merges, and the merged run records it
    run_shard([t], FakeGenerator(), EvalOptions(shard=(1, 2)), out_dir=tmp_path / "b1")
    merged = merge_shards([tmp_path / "b1", tmp_path / "s2"], out_dir=tmp_path / "m")
    assert merged["model"]["load_options"]["dtype"] == "bfloat16"
    assert merged["run"]["model_calls"] == 0
