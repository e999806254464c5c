"""Sharded evaluation: 2 shards + merge == one unsharded run; mismatched shards are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medmllm.errors import InvalidRequestError, ShardMismatchError
from medmllm.eval.runner import EvalOptions, in_shard, run_eval
from medmllm.eval.shard import merge_shards, parse_shard, run_shard
from medmllm.eval.task import Task
from tests.eval.eval_helpers import MC_TASK, write_task
from tests.fakes import FakeGenerator

REPO = Path(__file__).resolve().parents[2]
RUN_DEPENDENT = ("environment", "run")  # timing, cache counters, date/load: differ run to run


def comparable(results: dict) -> dict:
    out = {k: v for k, v in results.items() if k not in RUN_DEPENDENT}
    out["tasks"] = {
        name: {k: v for k, v in sec.items() if k != "timing"}
        for name, sec in results["tasks"].items()
    }
    return json.loads(json.dumps(out))


def task(tmp_path: Path, mcqa_file: Path) -> Task:
    return Task.from_file(write_task(tmp_path, MC_TASK.format(path=mcqa_file)))


def test_two_shards_merge_equal_unsharded(tmp_path: Path, mcqa_file: Path) -> None:
    options = EvalOptions(seed=7)
    whole = run_eval(
        [task(tmp_path, mcqa_file)], FakeGenerator(), options, out_dir=tmp_path / "whole",
        cache_path=tmp_path / "whole.sqlite", report=False,
    )  # fmt: skip
    sizes = []
    for i in (1, 2):
        part = run_shard(
            [task(tmp_path, mcqa_file)], FakeGenerator(), EvalOptions(seed=7, shard=(i, 2)),
            out_dir=tmp_path / f"s{i}", report=False,
        )  # fmt: skip
        sizes.append(part["tasks"]["synth"]["n"])
        assert (tmp_path / f"s{i}" / "calls.sqlite").is_file()  # each shard its own cache
    assert sorted(sizes) != [0, 12] and sum(sizes) == 12  # a real split
    merged = merge_shards(
        [tmp_path / "s2", tmp_path / "s1"], out_dir=tmp_path / "merged", report=False
    )
    assert comparable(merged) == comparable(whole)
    on_disk = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert comparable(on_disk) == comparable(
        json.loads((tmp_path / "whole/results.json").read_text())
    )
    assert merged["run"]["model_calls"] == 0  # every answer came from the shards


def test_split_is_deterministic_and_complete() -> None:
    ids = [f"item-{i}" for i in range(500)]
    for n in (1, 2, 3, 7):
        owners = [[i for i in range(1, n + 1) if in_shard(x, i, n)] for x in ids]
        assert all(len(o) == 1 for o in owners)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/2", "3/2", "x", "1/0"):
        with pytest.raises(InvalidRequestError, match="shard"):
            parse_shard(bad)


def test_merge_refuses_other_configs_and_missing_shards(tmp_path, mcqa_file) -> None:
    t = task(tmp_path, mcqa_file)
    run_shard([t], FakeGenerator(), EvalOptions(shard=(1, 2)), out_dir=tmp_path / "a1")
    run_shard([t], FakeGenerator(), EvalOptions(shard=(2, 2), seed=99), out_dir=tmp_path / "b2")
    with pytest.raises(ShardMismatchError, match=r"different configs.*seed"):
        merge_shards([tmp_path / "a1", tmp_path / "b2"], out_dir=tmp_path / "m")
    run_shard([t], FakeGenerator(model="other"), EvalOptions(shard=(2, 2)), out_dir=tmp_path / "c2")
    with pytest.raises(ShardMismatchError, match="model"):
        merge_shards([tmp_path / "a1", tmp_path / "c2"], out_dir=tmp_path / "m")
    with pytest.raises(ShardMismatchError, match=r"need shards 1\.\.2 once each"):
        merge_shards([tmp_path / "a1", tmp_path / "a1"], out_dir=tmp_path / "m")
    with pytest.raises(ShardMismatchError, match=r"need shards 1\.\.2"):
        merge_shards([tmp_path / "a1"], out_dir=tmp_path / "m")


@pytest.mark.slow
def test_cli_shard_and_merge(tmp_path: Path, mcqa_file: Path) -> None:
    task_file = write_task(tmp_path, MC_TASK.format(path=mcqa_file))
    env = {**os.environ, "MEDMLLM_HOME": str(tmp_path / "home")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"), env.get("PYTHONPATH", "")])
    base = [sys.executable, "-m", "medmllm.cli.main", "eval"]
    common = ["--task-file", str(task_file), "--backend", "tests.fakes:FakeGenerator", "-q"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=300)

    for i in (1, 2):
        done = cli(*common, "--shard", f"{i}/2", "-o", str(tmp_path / f"s{i}"))
        assert done.returncode == 0, done.stderr
    whole = cli(*common, "-o", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    merged = cli("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "-o", str(tmp_path / "m"))
    assert merged.returncode == 0, merged.stderr
    assert (tmp_path / "m" / "report.html").is_file()
    read = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("m", "whole")]
    assert comparable(read[0]) == comparable(read[1])
    bad = cli(*common, "--shard", "3/2", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "shard" in bad.stderr
    lonely = cli("merge", str(tmp_path / "s1"), "-o", str(tmp_path / "m2"))
    assert lonely.returncode == 2 and "need shards 1..2" in lonely.stderr
