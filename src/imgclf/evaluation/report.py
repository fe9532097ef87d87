"""The figures and the report of an evaluation: ROC curves, confusion matrix, report.html.

Plots are drawn from the metrics computed once (``plot_roc``, ``plot_confusion``); the report is
one self-contained HTML file (plots and thumbnails inlined).
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def plot_roc(metrics: dict[str, Any], ax=None):
    """One-vs-rest ROC curves with per-class AUC in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    for name, curve in metrics["roc_curves"].items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {metrics['roc_auc'][name]:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (one vs rest, test split)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_confusion(metrics: dict[str, Any], ax=None):
    """Confusion matrix with counts (rows: true label, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(metrics["confusion_matrix"])
    labels = metrics["labels"]
    if ax is None:
        size = max(4.5, 0.6 * len(labels) + 2)
        _, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="Predicted", ylabel="True", title="Confusion matrix (test split)")
    thresh = cm.max() / 2 if cm.size else 0
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color="white" if cm[i, j] > thresh else "black")
    return ax


def plot_reliability(metrics: dict[str, Any], ax=None):
    """Reliability diagram: accuracy against mean confidence per confidence bin, before and after calibration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    cal = metrics.get("calibration") or {}
    for key, style in (("before", "s--"), ("after", "o-")):
        bins = (cal.get("reliability") or {}).get(key)
        if bins:
            ece = cal[key]["ece"]
            ax.plot(bins["confidence"], bins["accuracy"], style, label=f"{key} calibration (ECE {ece:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfectly calibrated")
    ax.set(xlabel="Confidence (top score)", ylabel="Accuracy", title="Reliability (test split)", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper left", fontsize=8)
    return ax


def plot_coverage(metrics: dict[str, Any], ax=None):
    """Accuracy on the images answered against the share answered, when answering only above a confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    cov = metrics.get("coverage") or {"coverage": [], "accuracy": [], "threshold": []}
    ax.plot(cov["coverage"], cov["accuracy"], "o-")
    for c, a, t in list(zip(cov["coverage"], cov["accuracy"], cov["threshold"]))[::4]:
        ax.annotate(f"{t:.2f}", (c, a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="Coverage (share of test images answered)", ylabel="Accuracy on the answered images",
           title="Abstaining below a confidence (predict.min_confidence)", xlim=(0, 1.02))
    ax.grid(alpha=0.3)
    return ax


def _img_tag(png_path: Path) -> str:
    if not png_path.exists():
        return ""
    b64 = base64.b64encode(png_path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{b64}" alt="{html.escape(png_path.stem)}">'


def _thumb_tag(path: str) -> str:
    from ..data.images import ImageError, safe_thumbnail

    try:
        img = safe_thumbnail(path, 128)
    except ImageError:
        return "<span>(unreadable)</span>"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}" alt="">'


def _auc(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def _health_section(health: dict[str, Any] | None, label_issues: Sequence[dict[str, Any]], max_issues: int = 48) -> str:
    """The data doctor's "dataset health": its counts and the worst suspected label errors."""
    if not health:
        return ""
    acc = health.get("accuracy_without_suspects")
    facts = [
        ("estimated label error rate", _pct(health.get("estimated_label_error_rate"))),
        ("suspected label errors (label_issues.csv)", f"{health['label_issues']} ({health['label_issues_test']} in test)"),
        ("outliers (outliers.csv)", str(health["outliers"])),
        ("near-duplicate pairs (duplicates.csv)", f"{health['duplicate_pairs']}: {health['within_class_pairs']} within a class, "
                                                  f"{health['cross_class_pairs']} across classes, {health['leak_pairs']} across train/test"),
        ("class imbalance (largest / smallest class)", str(health.get("class_imbalance"))),
        (f"images smaller than the network's input ({health['input_size']} px)", str(health.get("images_below_input_size", "—"))),
        ("findings dismissed by a person's review", str(health.get("dismissed", 0))),
    ]
    if "accuracy_without_suspects" in health:
        facts.append(("test accuracy without leaking or suspect test images",
                      f"{_pct(acc)} on {health['n_test_without_suspects']} images (beside the plain figure above)"))
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in facts)
    cards = "".join(
        f'<figure>{_thumb_tag(r["path"])}<figcaption>{html.escape(Path(r["path"]).name)} ({html.escape(r["split"])})<br>'
        f'given <b>{html.escape(r["given_label"])}</b><br>suggested <b>{html.escape(r["suggested_label"])}</b> '
        f'({float(r["score"]):.2f})</figcaption></figure>' for r in list(label_issues)[:max_issues])
    more = f", worst {max_issues} shown" if len(label_issues) > max_issues else ""
    return (f'<h2>Dataset health</h2><table class="health">{rows}</table>'
            f"<h3>Suspected label errors ({len(label_issues)}{more}; review them in the web UI's Review view)</h3>"
            f'<div class="errors">{cards or "<p>None.</p>"}</div>')


def _trust_section(metrics: dict[str, Any]) -> str:
    """Calibration before/after and the unknown-image threshold on the test images, as one table."""
    cal = metrics.get("calibration")
    if not cal:
        return ""
    rows = "".join(f"<tr><td>{k} calibration</td><td>{cal[k]['ece']:.4f}</td><td>{cal[k]['nll']:.4f}</td><td>{cal[k]['brier']:.4f}</td></tr>"
                   for k in ("before", "after"))
    unk = metrics.get("unknown")
    note = (f"<p>Unknown-image threshold: {_pct(unk['accepted'])} of the test images accepted; accuracy on them "
            f"{_pct(unk['accuracy_answered'])} (all: {_pct(unk['accuracy_all'])}).</p>") if unk else ""
    return (f"<table><tr><th>scores (temperature {cal['temperature']:.3g})</th><th>ECE</th><th>NLL</th><th>Brier</th></tr>"
            f"{rows}</table>{note}")


def _preset_section(preset: dict[str, Any] | None) -> str:
    """The candidates a balanced/best preset weighed: nested-CV score on train, cost, status, the winner."""
    if not preset or not preset.get("candidates"):
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c['featurizers'])}</td><td>{_pct(c['cv_class_avg_accuracy'])}</td>"
        f"<td>{'—' if c['cost_s'] is None else round(c['cost_s'], 1)}</td>"
        f"<td>{'winner' if c['winner'] else html.escape(c['status'])}</td></tr>"
        for c in preset["candidates"])
    how = preset.get("chosen_by", "nested cross-validation on the train split")  # runs before chosen_by was recorded
    return (f"<h2>Featurizer candidates (preset {html.escape(str(preset.get('name')))})</h2><p>Chosen: "
            f"<b>{html.escape(str(preset.get('winner')))}</b> ({html.escape(how)}; test images never read)</p><table><tr>"
            f"<th>featurizers</th><th>CV class-averaged accuracy</th><th>cost (s)</th><th></th></tr>{rows}</table>")


def _time_limit_note(metrics: dict[str, Any]) -> str:
    """What a ``--time-limit`` left out: candidates and refinement (in the candidates table), C values, epochs."""
    preset, clf = metrics.get("preset") or {}, metrics.get("classifier") or {}
    limit = preset.get("time_limit")
    cut = [h["epochs_cut_to"] for h in metrics.get("training_history") or [] if h.get("epochs_cut_to")]
    if not limit and not clf.get("c_unscored") and not cut:
        return ""
    parts = [f"refinement: {html.escape(str(preset['refinement'].get('status')))}"] if preset.get("refinement") else []
    if clf.get("c_unscored"):
        parts.append(f"the SVM's C search left out C = {', '.join(f'{c:g}' for c in clf['c_unscored'])} (not enough time left)")
    if cut:
        parts.append(f"refinement stopped after epoch {cut[-1]} to stay in time")
    head = f"Time limit {limit:g} s" if limit else "Time budget"
    return f"<p><b>{head}</b>{': ' + '; '.join(parts) if parts else ': everything planned ran'}.</p>"


def _ensemble_section(preset: dict[str, Any] | None) -> str:
    """Preset best's ensemble: each component's validation score on the held-out part of train, weight and why."""
    ens = (preset or {}).get("ensemble")
    if not ens or not ens.get("chosen"):
        return ""
    test = ens.get("test") or {}
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_pct(c.get('val_class_avg_accuracy'))}</td>"
        f"<td>{_pct(c.get('val_class_avg_accuracy_flip'))}</td><td>{_pct((test.get(name) or {}).get('class_avg_accuracy'))}</td>"
        f"<td>{c.get('weight', '—')}</td><td>{html.escape(str(c.get('why', '')))}</td></tr>"
        for name, c in ens.get("components", {}).items())
    chosen = ens["chosen"]
    return (f"<h2>Ensemble (preset best)</h2><p>Weights and flip test-time augmentation chosen on {ens.get('validation_images')} "
            f"validation images held out of the train split: {html.escape(str(ens.get('why', '')))}. Flip: "
            f"<b>{'on' if chosen['tta_flip'] else 'off'}</b>; pooled validation class-averaged accuracy "
            f"{_pct(chosen['val_class_avg_accuracy'])}.</p><table><tr><th>component</th><th>validation class-averaged accuracy</th>"
            f"<th>with flip</th><th>test, alone</th><th>weight</th><th></th></tr>{rows}</table>")


def _class_maps_section(maps: Sequence[tuple[dict[str, Any], Path, Path]]) -> str:
    """Misclassified test images with the class activation maps of their predicted and their true class."""
    if not maps:
        return ""
    cards = "".join(
        f'<figure class="cam"><div>{_img_tag(pred_png)}{_img_tag(true_png)}</div><figcaption>{html.escape(Path(p["path"]).name)}: '
        f'predicted <b>{html.escape(p["predicted"])}</b> ({p["score"]:.2f}) · true <b>{html.escape(p["label"])}</b></figcaption></figure>'
        for p, pred_png, true_png in maps)
    return ("<h2>Where the model looked: misclassified test images</h2><p>Class activation maps: left, the predicted "
            "class's; right, the true class's (red most, blue least evidence; outside the network's center crop, dimmed). "
            "Each map's mean plus the class's bias is the classifier's decision value for that class.</p>"
            f'<div class="errors">{cards}</div>')


def write_report(path: str | Path, metrics: dict[str, Any], predictions: list[dict[str, Any]], title: str,
                 figures: Sequence[Path] = (), max_errors: int = 200, label_issues: Sequence[dict[str, Any]] = (),
                 class_maps: Sequence[tuple[dict[str, Any], Path, Path]] = ()) -> Path:
    """A self-contained HTML report at ``path``: metrics, the PNG ``figures`` that exist,
    thumbnails of misclassified images, the ``class_maps`` (prediction row, predicted class's map PNG, true
    class's) and, when the data doctor ran, the dataset's health."""
    from ..util.files import write_text
    from .metrics import per_class_scores

    per = per_class_scores(metrics["confusion_matrix"], metrics["labels"])
    per = {k: metrics.get(k) or v for k, v in per.items()}
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_pct(metrics['per_class_accuracy'][n])}</td>"
        f"<td>{_pct(per['per_class_precision'][n])}</td><td>{_pct(per['per_class_recall'][n])}</td>"
        f"<td>{_auc(per['per_class_f1'][n])}</td><td>{per['per_class_support'][n]}</td>"
        f"<td>{_auc(metrics['roc_auc'][n])}</td></tr>"
        for n in metrics["labels"]
    )
    errors = [p for p in predictions if p["label"] != p["predicted"]]
    errors.sort(key=lambda p: -p["score"])
    cards = "".join(
        f'<figure>{_thumb_tag(p["path"])}<figcaption>{html.escape(Path(p["path"]).name)}<br>true <b>{html.escape(p["label"])}</b>'
        f'<br>predicted <b>{html.escape(p["predicted"])}</b> ({p["score"]:.2f})</figcaption></figure>'
        for p in errors[:max_errors]
    )
    extra = "".join(
        f"<p>{html.escape(k)}: {_pct(v) if isinstance(v, float) and v <= 1 else html.escape(str(v))}</p>"
        for k, v in metrics.items()
        if k in ("int8_accuracy", "int8_class_avg_accuracy")
    ) + _trust_section(metrics)
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}.health td{{text-align:left}}td:first-child{{text-align:left}}
.plots img{{max-width:48%;margin-right:1%}}.errors{{display:flex;flex-wrap:wrap;gap:10px}}
figure{{margin:0;width:140px;font-size:12px}}figure img{{max-width:128px;max-height:128px}}
figure.cam{{width:330px}}figure.cam img{{width:160px;height:160px;max-width:none;max-height:none;object-fit:contain;background:#222;margin-right:4px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p><b>Accuracy</b> {_pct(metrics['accuracy'])} &middot; <b>class-averaged accuracy</b> {_pct(metrics['class_avg_accuracy'])}
&middot; <b>macro AUC</b> {_auc(metrics.get('macro_auc'))}
&middot; train images {metrics.get('n_train', '?')} &middot; test images {metrics['n_test']}</p>{extra}
<table class="per-class"><tr><th>class</th><th>accuracy</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>ROC AUC</th></tr>{rows}</table>
<div class="plots">{''.join(_img_tag(Path(f)) for f in figures)}</div>
<h2>Misclassified test images ({len(errors)}{', first ' + str(max_errors) if len(errors) > max_errors else ''})</h2>
<div class="errors">{cards or '<p>None.</p>'}</div>
{_preset_section(metrics.get("preset"))}{_time_limit_note(metrics)}{_ensemble_section(metrics.get("preset"))}{_class_maps_section(class_maps)}
{_health_section(metrics.get("dataset_health"), label_issues)}</body></html>"""
    write_text(path, doc)
    return Path(path)
