"""Evaluation tasks: a folder ``tasks/<name>/task.yaml`` (+ optional ``process.py``) per benchmark.

A task says *where* the data is (local JSONL/JSON/CSV or a Hugging Face dataset id), *how* a raw
row maps to an :class:`Item` (field names, or a ``process_row`` hook in ``process.py`` when the
public format needs code), *how* it is prompted (a Jinja2 template) and *what* is measured. The
YAML is validated by the pydantic :class:`TaskConfig`, so a typo names the key and the file
instead of surfacing later as a confusing KeyError deep in the runner.

Built-in tasks register in :data:`TASKS` exactly like a plugin would (by folder), so
``medmllm eval --tasks medqa`` and ``--task-file my_task.yaml`` go through the same code.

Example:
    >>> from medmllm.eval.task import load_task
    >>> task = load_task("medmcqa")  # doctest: +SKIP
    >>> items = task.load_items(limit=10)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medmllm.errors import (
    ConfigError,
    DataFormatError,
    DataNotFoundError,
    MedMLLMError,
    OfflineError,
)
from medmllm.eval.readers import (
    DatasetSpec,
    files_in_folder,
    read_hf,
    read_rows,
    relative_image_root,
)
from medmllm.eval.split import TrainedSplit
from medmllm.prompts.cot import COT_INSTRUCTION, DIRECT_INSTRUCTION
from medmllm.registry import Registry
from medmllm.validation import config_error

TASKS_DIR = Path(__file__).parent / "tasks"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

OutputType = Literal["multiple_choice", "generate", "vqa", "report"]


class FieldMap(BaseModel):
    """Which keys of a raw row hold each part of an item (used when there is no process hook)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field("id", description="Row key of the item id; None numbers the rows.")
    question: str = Field("question", description="Row key of the question text.")
    options: str | None = Field(
        "options",
        description="Row key of the options: a {letter: text} object or a list (lettered A, B…).",
    )
    answer: str = Field("answer", description="Row key of the gold answer (a letter for MC).")
    context: str | None = Field(None, description="Row key of a context passage (or list).")
    image: str | None = Field(None, description="Row key of an image path (VQA/report tasks).")


class PromptSpec(BaseModel):
    """How an item becomes model input."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(
        ...,
        description="Jinja2 template of the prompt. Variables: question, options (list of "
        "(letter, text)), options_text (rendered 'A. text' lines), context, passages.",
    )
    choices: Literal["letters", "text"] = Field(
        "letters",
        description="Log-likelihood continuations: ' A', ' B'… ('letters') or ' <option text>' "
        "('text', e.g. PubMedQA's yes/no/maybe).",
    )
    instruction: str = Field(
        DIRECT_INSTRUCTION,
        description="Appended to the prompt in generative mode to ask for an extractable answer.",
    )
    cot_instruction: str = Field(
        COT_INSTRUCTION,
        description="Appended in chain-of-thought mode; extraction looks for the final answer.",
    )
    include_context: bool = Field(
        True, description="Render the row's context (e.g. PubMedQA's abstract) into the prompt."
    )


class FewShotSpec(BaseModel):
    """Fixed exemplars prepended to every prompt (the same for every item, so caches reuse them)."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(0, ge=0, description="Number of exemplars (0 = zero-shot).")
    path: str | None = Field(
        None,
        description="File to take the exemplars from (its first n rows); None uses the first n "
        "rows of the task's own data and removes them from the evaluated items.",
    )
    separator: str = Field("\n\n", description="Text between exemplars and the question.")


class GenerationSpec(BaseModel):
    """Decoding settings for generative modes."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(32, gt=0, description="Tokens to generate for a direct answer.")
    cot_max_tokens: int = Field(256, gt=0, description="Tokens to generate for chain-of-thought.")
    stop: list[str] = Field(default_factory=list, description="Stop strings.")


class TaskConfig(BaseModel):
    """The schema of ``task.yaml``; every shipped task file is an instance of it (tested in CI)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="Registry name of the task (the folder name).")
    description: str = Field("", description="One line shown by `medmllm eval list`.")
    output_type: OutputType = Field(
        ...,
        description="multiple_choice (scored by option log-likelihood or extracted letters), "
        "generate (free text), vqa (image + question) or report (image → report).",
    )
    dataset: DatasetSpec = Field(..., description="Where the rows come from.")
    fields: FieldMap = Field(default_factory=FieldMap, description="Row keys of the item parts.")
    process: str | None = Field(
        None,
        description="Name of a function in the task folder's process.py mapping (row, index) → "
        "item dict (question, options, answer, id, context, image, meta); None uses 'fields'.",
    )
    prompt: PromptSpec = Field(..., description="Prompt template and answer format.")
    fewshot: FewShotSpec = Field(default_factory=FewShotSpec, description="Few-shot exemplars.")
    generation: GenerationSpec = Field(
        default_factory=GenerationSpec, description="Decoding settings (generative modes)."
    )
    answer_type: Literal["letter", "yesno", "free"] = Field(
        "letter",
        description="How to extract an answer from generated text: an option letter, "
        "yes/no(/maybe), or the free text itself.",
    )
    metrics: list[str] = Field(
        default_factory=lambda: ["accuracy"],
        description="Metric names from the metrics registry (`medmllm eval list --metrics`).",
    )
    bias_swaps: bool = Field(
        False,
        description="Questions are patient vignettes: run counterfactual sex/race/age swaps "
        "when --bias is given.",
    )


@dataclass
class Item:
    """One evaluated example, in a format every mode and metric understands."""

    id: str
    question: str
    answer: str
    options: dict[str, str] | None = None
    context: str | None = None
    image: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What a loader kept and skipped (missing/corrupt images are skipped and counted)."""

    n_rows: int = 0
    filtered: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_ids: list[str] = field(default_factory=list)
    excluded: int = 0  # items the model was trained on (a run's split.json), dropped
    split_matches: int = 0  # rows of the task the split names at all (0: the wrong split?)

    def skip(self, reason: str, item_id: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self.skipped_ids.append(item_id)


TASKS: Registry[Path] = Registry("task")


def _register_builtin_tasks() -> None:
    # Each folder is a task; registering paths (not parsed configs) keeps `import` cheap.
    if TASKS_DIR.is_dir():
        for folder in sorted(TASKS_DIR.iterdir()):
            if (folder / "task.yaml").is_file():
                TASKS.register(folder.name, folder / "task.yaml")


_register_builtin_tasks()


def _expand(value: str, base: Path) -> Path:
    """Expand ``${shared}``/``${VAR}`` and resolve a relative path against ``base``."""

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "shared":
            from medmllm.config import shared_data_dir

            return str(shared_data_dir())
        if key not in os.environ:
            raise ConfigError(
                f"dataset path {value!r} uses ${{{key}}} but that environment variable is unset",
                hint=f"export {key}=… or pass --data PATH",
            )
        return os.environ[key]

    path = Path(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", repl, value)).expanduser()
    return path if path.is_absolute() else (base / path)


class Task:
    """A loaded task: its validated config, folder and data loaders.

    Args:
        config: the parsed ``task.yaml``.
        folder: the task folder (for ``process.py`` and relative paths).
        source: the YAML file, quoted in error messages.
    """

    def __init__(self, config: TaskConfig, folder: Path, source: Path) -> None:
        self.include_context = config.prompt.include_context
        self.config = config
        self.folder = folder
        self.source = source
        # --data (a file or a folder) and --image-root replace the YAML's paths
        self.data_override: list[Path] | None = None
        self.image_root_override: Path | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @classmethod
    def from_file(cls, path: str | Path) -> Task:
        """Parse and validate a task YAML; errors name the file and the offending key."""
        source = Path(path).expanduser()
        if not source.is_file():
            raise DataNotFoundError(
                f"task file not found: {source}", hint="pass an existing task.yaml to --task-file"
            )
        try:
            raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DataFormatError(
                f"task file {source} is not UTF-8 text (a binary file?)",
                hint="pass a task.yaml text file",
            ) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"task file {source}{where} is not valid YAML: {getattr(exc, 'problem', exc)}",
                hint="fix the YAML syntax (indentation, quotes)",
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"task file {source} must hold a mapping of keys, got {type(raw).__name__}",
                hint="start from a shipped task: `medmllm eval list`",
            )
        raw.setdefault("name", source.parent.name if source.name == "task.yaml" else source.stem)
        try:
            config = TaskConfig.model_validate(raw)
        except ValidationError as exc:
            raise config_error(
                exc, f"task file {source}", hint="see the TaskConfig fields in docs/eval.md"
            ) from None
        return cls(config, source.parent, source)

    # -- data ---------------------------------------------------------------------------------
    def _path_values(self) -> list[str]:
        spec = self.config.dataset
        if spec.path is None:
            return []
        return [spec.path] if isinstance(spec.path, str) else list(spec.path)

    def data_paths(self) -> list[Path]:
        """The local data file(s), expanded (``--data`` overrides the YAML).

        ``--data`` may name a folder: each file the YAML lists is looked up in it by its path
        below the YAML's root folder (``${VAR}/test/x.csv`` → ``FOLDER/test/x.csv``), then by
        its file name anywhere below the folder; a task without a path takes every data file
        of the folder.
        """
        if self.data_override is None:
            return [_expand(v, self.folder) for v in self._path_values()]
        out: list[Path] = []
        for given in self.data_override:
            out += files_in_folder(given, self._path_values()) if given.is_dir() else [given]
        return out

    def image_roots(self, data_file: Path | None) -> list[Path]:
        """Folders that relative image paths are tried against, in order.

        ``--image-root`` wins; with ``--data`` the YAML's layout is kept relative to the data
        file (``${X}/test.json`` + ``${X}/imgs`` → ``imgs/`` next to the given file), then the
        data file's own folder; otherwise the YAML's ``image_root`` or the data file's folder.
        """
        if self.image_root_override is not None:
            return [self.image_root_override]
        root = self.config.dataset.image_root
        if self.data_override is None and root is not None:
            return [_expand(root, self.folder)]
        if data_file is None:
            return []
        values = self._path_values()
        roots = []
        if root is not None and values:
            relative = relative_image_root(root, values[0])
            if relative is not None:
                roots.append(data_file.parent / relative)
        return [*roots, data_file.parent]

    def _hook(self, name: str) -> Callable[..., Any]:
        module_path = self.folder / "process.py"
        if not module_path.is_file():
            raise ConfigError(
                f"task {self.name!r} names hook {name!r} but {module_path} does not exist",
                hint="add process.py next to task.yaml or remove the key naming it",
            )
        module = _load_module(f"medmllm_task_{self.name}", module_path)
        fn = getattr(module, name, None)
        if fn is None:
            raise ConfigError(
                f"task file {self.source}: {name!r} is not defined in {module_path}",
                hint="use the name of a function in process.py",
            )
        return fn  # type: ignore[no-any-return]

    @cached_property
    def _process(self) -> Callable[[dict[str, Any], int], dict[str, Any]] | None:
        if self.config.process is None:
            return None
        module_path = self.folder / "process.py"
        if not module_path.is_file():
            raise ConfigError(
                f"task {self.name!r} names process '{self.config.process}' but {module_path} "
                "does not exist",
                hint="add process.py next to task.yaml or remove the 'process' key",
            )
        module = _load_module(f"medmllm_task_{self.name}", module_path)
        fn = getattr(module, self.config.process, None)
        if fn is None:
            raise ConfigError(
                f"task file {self.source}: key 'process' names {self.config.process!r}, "
                f"which {module_path} does not define",
                hint="use the name of a function in process.py",
            )
        return fn

    def raw_rows(self) -> list[tuple[Path | None, int, dict[str, Any]]]:
        """All rows as (file, 1-based row number, row).

        Local files come first; when they are not there and the task names a Hugging Face
        dataset (``hf_id``), the hub copy is the alternative (refused in offline mode).
        """
        spec = self.config.dataset
        try:
            paths = self.data_paths()
            if paths:
                rows: list[tuple[Path | None, int, dict[str, Any]]] = []
                for path in paths:
                    rows += [(path, n, row) for n, row in read_rows(path, spec)]
                return rows
        except (DataNotFoundError, ConfigError) as exc:
            if self.data_override is not None or not spec.hf_id:
                raise
            local_problem: MedMLLMError | None = exc
        else:
            local_problem = None
        if spec.hf_id:
            try:
                hub = read_hf(spec)
            except OfflineError as exc:
                where = f"no local data ({local_problem.message}); " if local_problem else ""
                raise OfflineError(
                    f"{where}{exc.message}",
                    hint="pass --data PATH to a local copy, or unset MEDMLLM_OFFLINE to download "
                    f"{spec.hf_id}",
                ) from None
            convert = self._hook(spec.hf_process) if spec.hf_process else None
            return [(None, n, convert(row, n) if convert else row) for n, row in hub]
        raise ConfigError(
            f"task file {self.source}: key 'dataset' needs 'path' or 'hf_id'",
            hint="set dataset.path to a local file, or pass --data PATH",
        )

    def to_item(self, row: dict[str, Any], number: int, where: str) -> Item | None:
        """Map one raw row to an :class:`Item` (None: the hook filtered it out).

        Problems name the file and the row number.
        """
        process = self._process
        if process is not None:
            try:
                mapped = process(row, number)
                if mapped is None:
                    return None
            except KeyError as exc:
                raise DataFormatError(
                    f"{where} row {number}: missing field {exc.args[0]!r}",
                    hint=f"every row needs the fields task {self.name!r} reads",
                ) from None
        else:
            mapped = self._map_fields(row, number, where)
        options = _normalise_options(mapped.get("options"), where, number)
        answer = str(mapped.get("answer", "")).strip()
        if self.config.output_type == "multiple_choice":
            if not options:
                raise DataFormatError(
                    f"{where} row {number}: a multiple-choice item has no options",
                    hint="check the 'options' field mapping",
                )
            if answer not in options:
                raise DataFormatError(
                    f"{where} row {number}: answer {answer!r} is not among the options "
                    f"{sorted(options)}",
                    hint="fix the row's answer letter or the 'answer' field mapping",
                )
        if not str(mapped.get("question", "")).strip() and self.config.output_type != "report":
            raise DataFormatError(f"{where} row {number}: empty question")
        context = mapped.get("context")
        if isinstance(context, list):
            context = "\n".join(str(c) for c in context)
        return Item(
            id=str(mapped.get("id") if mapped.get("id") is not None else number),
            question=str(mapped.get("question", "")),
            answer=answer,
            options=options,
            context=context,
            image=mapped.get("image"),
            meta=dict(mapped.get("meta") or {}),
        )

    def _map_fields(self, row: dict[str, Any], number: int, where: str) -> dict[str, Any]:
        fm = self.config.fields
        out: dict[str, Any] = {}
        wanted = {
            "id": fm.id,
            "question": fm.question,
            "options": fm.options,
            "answer": fm.answer,
            "context": fm.context,
            "image": fm.image,
        }
        optional = {"id", "context"}
        if self.config.output_type != "multiple_choice":
            optional.add("options")
        for part, key in wanted.items():
            if key is None:
                continue
            if key not in row:
                if part in optional:
                    continue
                raise DataFormatError(
                    f"{where} row {number}: missing field {key!r} (needed as the {part})",
                    hint=f"add {key!r} to every row, or map another key with fields.{part}",
                )
            out[part] = row[key]
        return out

    def load_items(
        self,
        *,
        limit: int | None = None,
        check_images: bool = True,
        exclude: TrainedSplit | None = None,
    ) -> tuple[list[Item], list[Item], LoadReport]:
        """Load (items, few-shot exemplars, load report).

        Exemplars taken from the task's own data are removed from the items, so no question is
        ever its own exemplar. Images that are missing or unreadable skip the item (counted in
        the report) instead of failing the whole run. ``exclude``: a training run's split;
        the items it trained on are dropped before ``limit`` applies (counted in the report).
        """
        report = LoadReport()
        rows = self.raw_rows()
        report.n_rows = len(rows)
        fs = self.config.fewshot
        exemplars: list[Item] = []
        if fs.n:
            if fs.path is None:
                exemplar_rows, rows = rows[: fs.n], rows[fs.n :]
            else:
                shots = _expand(fs.path, self.folder)
                exemplar_rows = [(shots, n, r) for n, r in read_rows(shots, self.config.dataset)]
                exemplar_rows = exemplar_rows[: fs.n]
            mapped = [self.to_item(r, n, str(p or self.name)) for p, n, r in exemplar_rows]
            exemplars = [m for m in mapped if m is not None]
        items: list[Item] = []
        needs_image = self.config.output_type in ("vqa", "report")
        for path, number, row in rows:
            full = limit is not None and len(items) >= limit
            if full and exclude is None:
                break
            item = self.to_item(row, number, str(path or self.config.dataset.hf_id))
            if item is None:
                report.filtered += not full
                continue
            if exclude is not None:  # every row is named, so a split matching none is caught
                report.split_matches += exclude.known(path, item.id)
                if full:
                    continue
                if exclude.trained(path, item.id):
                    report.excluded += 1
                    continue
            if needs_image:
                problem = _check_image(item, self.image_roots(path), check_images)
                if problem:
                    report.skip(problem, item.id)
                    continue
            items.append(item)
        return items, exemplars, report


def _normalise_options(value: Any, where: str, number: int) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k).strip(): str(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return {LETTERS[i]: str(v) for i, v in enumerate(value)}
    raise DataFormatError(
        f"{where} row {number}: options must be an object or a list, got {type(value).__name__}"
    )


def _check_image(item: Item, roots: list[Path], verify: bool) -> str | None:
    """Resolve the item's image path in place (first root that has it); a skip reason or None."""
    if not item.image:
        return "missing_image"
    path = Path(item.image)
    if not path.is_absolute():
        path = next((r / path for r in roots if (r / path).is_file()), path)
    if not path.is_file():
        return "missing_image"
    if verify:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return "corrupt_image"
    item.image = str(path)
    return None


_MODULES: dict[Path, Any] = {}


def _load_module(name: str, path: Path) -> Any:
    """Import a task's process.py once (its hooks are looked up by name)."""
    if path not in _MODULES:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[path] = module
    return _MODULES[path]


def load_task(name_or_file: str | Path) -> Task:
    """A task by registry name, or from a YAML file path.

    Raises:
        UnknownNameError: an unknown name (the message lists close names and all tasks).
        ConfigError: the YAML is malformed (names the key and file).
    """
    text = str(name_or_file)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return Task.from_file(text)
    return Task.from_file(TASKS.get(text))


def list_tasks() -> list[TaskConfig]:
    """Configs of every registered task (for ``medmllm eval list``)."""
    return [Task.from_file(TASKS.get(name)).config for name in TASKS.names()]
