"""``--device`` / ``--dtype`` / ``--model-arg``: parsed, validated early, passed to the loader."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medmllm.errors import DeviceUnavailableError, InvalidRequestError
from medmllm.models.generator import LoglikelihoodRequest, load_generator
from medmllm.models.placement import check_device, check_dtype, parse_model_args

CLI = [sys.executable, "-m", "medmllm.cli.main"]


def test_model_args_are_typed():
    got = parse_model_args(
        [
            *("device_map=auto", "load_in_8bit=false", 'max_memory={"0": "20GiB"}'),
            *("revision=v1.0", "n=8", "rope=0.5", "offload=none", "path=/models/x=y"),
        ]
    )
    assert got == {
        "device_map": "auto",
        "load_in_8bit": False,
        "max_memory": {"0": "20GiB"},
        "revision": "v1.0",
        "n": 8,
        "rope": 0.5,
        "offload": None,
        "path": "/models/x=y",  # only the first '=' splits
    }


@pytest.mark.parametrize("bad", ["device_map", "=auto", "1x=2", "a b=c"])
def test_bad_model_arg_names_the_value(bad):
    with pytest.raises(InvalidRequestError, match="key=value") as err:
        parse_model_args([bad])
    assert repr(bad) in str(err.value)


def test_dtype_and_device_checks():
    assert check_dtype("BF16") == "bfloat16" and check_dtype("auto") == "auto"
    with pytest.raises(InvalidRequestError, match=r"unknown dtype 'float8'.*float32"):
        check_dtype("float8")
    with pytest.raises(InvalidRequestError, match="unknown device 'tpu'"):
        check_device("tpu")
    assert check_device("cpu") == "cpu"


def test_cuda_without_a_gpu_names_the_fix():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceUnavailableError, match="sees no CUDA GPU") as err:
        check_device("cuda")
    assert "--device cpu" in (err.value.hint or "")


def test_options_a_backend_does_not_take_are_refused_before_loading():
    with pytest.raises(InvalidRequestError, match=r"backend 'openai' does not take .*'dtype'"):
        load_generator("openai", dtype="float16", base_url="http://127.0.0.1:9/v1")


def test_model_kwargs_reach_from_pretrained(tiny_llama_dir, monkeypatch):
    import transformers

    seen: list[dict] = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    plain = load_generator("hf", str(tiny_llama_dir))
    mapped = load_generator("hf", str(tiny_llama_dir), model_kwargs={"device_map": "auto"})
    assert seen[-1]["device_map"] == "auto" and "device_map" not in seen[0]
    assert str(mapped.device) == "cpu"  # accelerate's choice on a machine without a GPU
    reqs = [LoglikelihoodRequest("Question: What does HbA1c measure?\nAnswer:", " A")]
    assert mapped.loglikelihood(reqs) == pytest.approx(plain.loglikelihood(reqs), abs=1e-5)
    half = load_generator("hf", str(tiny_llama_dir), dtype="bfloat16")
    assert str(half.model.dtype) == "torch.bfloat16"
    with pytest.raises(InvalidRequestError, match="device_map"):
        load_generator("hf", str(tiny_llama_dir), device="cpu", model_kwargs={"device_map": "auto"})
    with pytest.raises(InvalidRequestError, match="refused the model arguments"):
        load_generator("hf", str(tiny_llama_dir), model_kwargs={"no_such_argument": 1})


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ask", "hi", "--dtype", "float8"], "unknown dtype 'float8'"),
        (["ask", "hi", "--model-arg", "device_map"], "key=value"),
        (["ask", "hi", "--device", "tpu"], "unknown device 'tpu'"),
        (["ask", "hi", "--backend", "openai", "--dtype", "float16"], "does not take"),
        (["eval", "-t", "medmcqa", "--backend", "hf", "--concurrency", "4"], "does not take"),
        (["ask", "hi", "--timeout", "0"], "--timeout must be > 0"),
    ],
)
def test_cli_refuses_bad_placement_in_one_line(args, fragment):
    result = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") and fragment in result.stderr, result.stderr
