"""``report.html``: one self-contained page (tables + matplotlib plots as inline PNGs).

The page has no external assets (no CDN, no JavaScript), so it opens offline, can be mailed,
and a browser screenshot shows everything. Plots: headline metric per task with 95% CI bars
next to the majority baseline (and the debiased score), prediction vs gold answer distribution,
reliability diagrams, RAG vs no-RAG (when several runs are combined) and bias gaps.

Example:
    >>> from medmllm.eval.report import write_report  # doctest: +SKIP
    >>> write_report([json.load(open("runs/a/results.json"))], Path("runs/a/report.html"))
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from medmllm.errors import DataFormatError, DataNotFoundError, OutputExistsError

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medmllm eval report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.note{color:#555;font-size:13px} img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.warn{color:#a40}
</style></head><body>
<h1>medmllm evaluation report</h1>
{% for r in runs %}<p class="note">Run {{ loop.index }}: {{ r.model.backend }} · {{ r.model.model }}
 · mode {{ r.config.mode }} · seed {{ r.config.seed }} · commit {{ r.environment.git_commit }}
 · medmllm {{ r.environment.versions.medmllm }}</p>{% endfor %}
<h2>Summary</h2>
<table><tr><th>task</th><th>run</th><th>n</th><th>metric</th><th>value [95% CI]</th>
<th>majority baseline</th><th>predictions</th><th>invalid</th><th>skipped</th></tr>
{% for row in rows %}<tr><td>{{ row.task }}</td><td>{{ row.run }}</td><td>{{ row.n }}</td>
<td>{{ row.metric }}</td><td>{{ row.value }}</td><td>{{ row.baseline }}</td>
<td>{{ row.dist }}</td><td>{{ row.invalid }}</td><td>{{ row.skipped }}</td></tr>{% endfor %}
</table>
<p class="note">Every accuracy is shown next to the accuracy of always giving the most frequent
gold answer. A model whose accuracy is inside that baseline's interval has shown no skill.</p>
{% for p in plots %}<h2>{{ p.title }}</h2>
<img alt="{{ p.title }}" src="data:image/png;base64,{{ p.png }}">
{% if p.note %}<p class="note">{{ p.note }}</p>{% endif %}{% endfor %}
<h2>All metrics</h2>
{% for t in details %}<h3>{{ t.task }} (run {{ t.run }})</h3>
<table><tr><th>metric</th><th>value</th><th>95% CI</th><th>n</th><th>baseline</th></tr>
{% for m in t.metrics %}<tr><td>{{ m.name }}</td><td>{{ m.value }}</td><td>{{ m.ci }}</td>
<td>{{ m.n }}</td><td>{{ m.baseline }}</td></tr>{% endfor %}</table>
{% for w in t.warnings %}<p class="warn">{{ w }}</p>{% endfor %}
{% if t.calibration %}<p>Calibration: ECE {{ t.calibration.ece }}, Brier {{ t.calibration.brier }};
selective accuracy {{ t.calibration.selective }}</p>{% endif %}
{% if t.debiased %}<p>Option-order debiasing ({{ t.debiased.rotations }} rotations,
{{ t.debiased.cost_factor }}× the scoring calls): accuracy {{ t.debiased.acc }},
predictions {{ t.debiased.dist }}, {{ t.debiased.changed }} answers changed.</p>{% endif %}
{% if t.bias %}<p>Bias (flip rate / accuracy gap): {{ t.bias }}</p>{% endif %}
{% if t.blind %}<p>Image-blind control (blank image; image gain = with image − blind, paired,
95% CI): {{ t.blind }}</p>{% endif %}
{% endfor %}
</body></html>
"""


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def _ci(ci: Any) -> str:
    return "–" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _headline(section: dict[str, Any]) -> str:
    return next(iter(section.get("metrics", {})), "accuracy")


def _label(run_idx: int, runs: Sequence[dict[str, Any]], section: dict[str, Any]) -> str:
    if len(runs) == 1:
        return section["task"]
    return f"{section['task']} · run {run_idx + 1}{' · RAG' if section.get('rag') else ''}"


def _plot_headline(runs: Sequence[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    labels, values, errs, bases, debiased = [], [], [], [], []
    for i, run in enumerate(runs):
        for section in run["tasks"].values():
            name = _headline(section)
            m = section["metrics"].get(name, {})
            if m.get("value") is None:
                continue
            labels.append(f"{_label(i, runs, section)}\n{name}")
            values.append(m["value"])
            lo, hi = m.get("ci") or (m["value"], m["value"])
            errs.append((m["value"] - lo, hi - m["value"]))
            bases.append((section.get("majority_baseline", {}).get(name) or {}).get("value"))
            debiased.append(
                ((section.get("debiased") or {}).get("metrics", {}).get("accuracy") or {}).get(
                    "value"
                )
            )
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(labels)), 3.8))
    xs = range(len(labels))
    ax.bar(
        xs,
        values,
        yerr=list(zip(*errs, strict=True)),
        capsize=6,
        color="#4c78a8",
        label="score (95% CI)",
    )
    for x, b in zip(xs, bases, strict=True):
        if b is not None:
            ax.hlines(b, x - 0.4, x + 0.4, colors="#e45756", linestyles="--", linewidth=2)
    for x, d in zip(xs, debiased, strict=True):
        if d is not None:
            ax.plot(x, d, marker="D", color="#54a24b", markersize=8)
    ax.plot([], [], "--", color="#e45756", label="majority baseline")
    if any(d is not None for d in debiased):
        ax.plot([], [], "D", color="#54a24b", label="option-rotation debiased")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper right")
    return _png(fig)


def _plot_distributions(runs: Sequence[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    panels = [
        (_label(i, runs, s), s)
        for i, run in enumerate(runs)
        for s in run["tasks"].values()
        if s.get("output_type") == "multiple_choice"
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False)
    for ax, (label, s) in zip(axes[0], panels, strict=True):
        series = [("predicted", s["prediction_distribution"], "#4c78a8")]
        if s.get("debiased"):
            series.append(("debiased", s["debiased"]["prediction_distribution"], "#54a24b"))
        series.append(("gold", s["gold_distribution"], "#f58518"))
        keys = sorted(set().union(*(d for _, d, _ in series)))
        width = 0.8 / len(series)
        for j, (name, dist, colour) in enumerate(series):
            offset = (j - (len(series) - 1) / 2) * width
            ax.bar(
                [x + offset for x in range(len(keys))],
                [dist.get(k, 0) for k in keys],
                width=width,
                label=name,
                color=colour,
            )
        ax.set_xticks(list(range(len(keys))), keys)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    return _png(fig)


def _plot_reliability(runs: Sequence[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    panels = [
        (_label(i, runs, s), s["calibration"])
        for i, run in enumerate(runs)
        for s in run["tasks"].values()
        if s.get("calibration", {}).get("bins")
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (label, cal) in zip(axes[0], panels, strict=True):
        bins = [b for b in cal["bins"] if b["count"]]
        centers = [(b["low"] + b["high"]) / 2 for b in bins]
        ax.bar(
            centers, [b["accuracy"] for b in bins], width=0.09, color="#4c78a8", label="accuracy"
        )
        ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        ax.plot(
            centers, [b["confidence"] for b in bins], "o", color="#e45756", label="mean confidence"
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_title(f"{label}\nECE {cal['ece']:.3f} · Brier {cal['brier']:.3f}", fontsize=9)
        ax.legend(fontsize=7)
    return _png(fig)


def _plot_rag(runs: Sequence[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    pairs: dict[str, dict[bool, float]] = {}
    for run in runs:
        for s in run["tasks"].values():
            value = s["metrics"].get(_headline(s), {}).get("value")
            if value is not None:
                pairs.setdefault(s["task"], {})[bool(s.get("rag"))] = value
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(max(4, 2 * len(pairs)), 3.2))
    xs = range(len(pairs))
    ax.bar([x - 0.2 for x in xs], [v[False] for v in pairs.values()], 0.4, label="no RAG")
    ax.bar([x + 0.2 for x in xs], [v[True] for v in pairs.values()], 0.4, label="RAG")
    ax.set_xticks(list(xs), list(pairs))
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_bias(runs: Sequence[dict[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    panels = []
    for i, run in enumerate(runs):
        for s in run["tasks"].values():
            for attr, data in (s.get("bias") or {}).items():
                if isinstance(data, dict) and data.get("n"):
                    panels.append((f"{_label(i, runs, s)} · {attr}", data))
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (label, data) in zip(axes[0], panels, strict=True):
        groups = data["groups"]
        ax.bar(groups, [data["accuracy"][g]["value"] for g in groups], color="#72b7b2")
        ax.set_ylim(0, 1)
        fr = data["flip_rate"]
        ax.set_title(
            f"{label}\nflip rate {fr['value']:.2f} · gap {data['accuracy_gap']:.2f}", fontsize=9
        )
    return _png(fig)


def render_report(runs: Sequence[dict[str, Any]]) -> str:
    """The HTML page for one or several results.json objects."""
    import matplotlib

    matplotlib.use("Agg")
    rows, details = [], []
    for i, run in enumerate(runs):
        for s in run["tasks"].values():
            name = _headline(s)
            m = s["metrics"].get(name, {})
            base = (s.get("majority_baseline") or {}).get(name) or {}
            dist = ", ".join(f"{k}:{v}" for k, v in s.get("prediction_distribution", {}).items())
            rows.append(
                {
                    "task": s["task"],
                    "run": i + 1,
                    "n": s["n"],
                    "metric": name,
                    "value": f"{_fmt(m.get('value'))} {_ci(m.get('ci'))}",
                    "baseline": f"{_fmt(base.get('value'))} ({str(base.get('label', ''))[:24]})"
                    if base
                    else "–",
                    "dist": dist if s.get("output_type") == "multiple_choice" else "(free text)",
                    "invalid": s.get("invalid", 0),
                    "skipped": sum((s.get("skipped") or {}).values()),
                }
            )
            cal = s.get("calibration")
            deb = s.get("debiased")
            deb_acc = (deb or {}).get("metrics", {}).get("accuracy", {})
            bias = s.get("bias") or {}
            details.append(
                {
                    "task": s["task"],
                    "run": i + 1,
                    "metrics": [
                        {
                            "name": k,
                            "value": _fmt(v.get("value")),
                            "ci": _ci(v.get("ci")),
                            "n": v.get("n", ""),
                            "baseline": _fmt(
                                ((s.get("majority_baseline") or {}).get(k) or {}).get("value")
                            ),
                        }
                        for k, v in s["metrics"].items()
                    ],
                    "warnings": [
                        v["unavailable"] for v in s["metrics"].values() if v.get("unavailable")
                    ],
                    "calibration": {
                        "ece": _fmt(cal["ece"]),
                        "brier": _fmt(cal["brier"]),
                        "selective": ", ".join(
                            f"{k}: {v:.3f}" for k, v in cal["selective_accuracy"].items()
                        ),
                    }
                    if cal
                    else None,
                    "debiased": {
                        "rotations": deb["rotations"],
                        "cost_factor": deb["cost_factor"],
                        "acc": f"{_fmt(deb_acc['value'])} {_ci(deb_acc['ci'])}",
                        "dist": deb["prediction_distribution"],
                        "changed": deb["changed_predictions"],
                    }
                    if deb
                    else None,
                    "blind": "; ".join(
                        f"{k}: blind {_fmt(s['blind_control']['metrics'][k].get('value'))}, "
                        f"gain {_fmt(g['value'])} {_ci(g['ci'])}"
                        for k, g in (s.get("blind_control") or {}).get("image_gain", {}).items()
                    ),
                    "bias": "; ".join(
                        f"{a}: {d['flip_rate']['value']:.2f} / {d['accuracy_gap']:.2f} (n={d['n']})"
                        for a, d in bias.items()
                        if isinstance(d, dict) and d.get("n")
                    ),
                }
            )
    plots = []
    for title, fn, note in (
        ("Headline metric per task (95% CI) vs majority baseline", _plot_headline, None),
        (
            "Predicted vs gold answers",
            _plot_distributions,
            "A model with a position bias piles its predictions on one letter.",
        ),
        ("Reliability diagrams", _plot_reliability, None),
        ("RAG vs no RAG", _plot_rag, None),
        ("Bias: accuracy per group", _plot_bias, None),
    ):
        png = fn(runs)
        if png:
            plots.append({"title": title, "png": png, "note": note})
    env = jinja2.Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(runs=runs, rows=rows, plots=plots, details=details)


def write_report(results: dict[str, Any] | Sequence[dict[str, Any]], path: Path) -> Path:
    """Render and write ``report.html`` (atomically)."""
    runs = [results] if isinstance(results, dict) else list(results)
    page = render_report(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a folder", hint="pass an .html file to --out")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave a half-written .tmp behind (disk full…)
        raise
    return path


def load_results(folder: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from a run folder (or the file itself)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise DataNotFoundError(
            f"no results.json at {path}", hint="pass the --out folder of a `medmllm eval` run"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict) or "tasks" not in data:
        raise DataFormatError(f"{path} is not a medmllm results file (no 'tasks' key)")
    check_results_shape(data, path)
    return data


def check_results_shape(data: dict[str, Any], path: Path) -> None:
    """The keys the report, judge and sheets read; a wrong shape is named, not a crash later."""
    hint = "pass the results.json written by `medmllm eval` (or rerun the evaluation)"
    problems = [
        f"'{key}' must be an object"
        for key in ("model", "config", "environment", "tasks")
        if not isinstance(data.get(key), dict)
    ]
    for name, section in (data.get("tasks") or {}).items():
        if not isinstance(section, dict) or not isinstance(section.get("items"), list):
            problems.append(f"tasks.{name} must be an object with an 'items' list")
        elif not all(isinstance(r, dict) and "id" in r for r in section["items"]):
            problems.append(f"tasks.{name}.items must be objects with an 'id'")
    if problems:
        raise DataFormatError(f"{path} is not a medmllm results file: {problems[0]}", hint=hint)
