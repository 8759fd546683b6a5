"""The poster's results table (Adrai et al. 2023, §7) from a study table, as Markdown and LaTeX.

Rows per (task, restorer): x, D(E(x)), y, x* (the restorer), selected x̂_α and x̂0.
Columns: PSNR, SSIM, LPIPS, FID, IS, KID ×10³ (the published metrics), SWD ×10³ (the
weight-free perceptual index) and the latent W2² (the objective DOT fits, not a
quality score). A metric that was not computed is printed "—" and explained in a
footnote; a value with a spread column (``<name>_sd``) is printed "mean ± sd".

The study table is the one ``dotlib.study.run_task`` returns (one row per signal; see
CONTEXT): columns task, restorer, encoder, signal, alpha, the metric columns and their
``_sd`` spreads, in raw units (KID and SWD are scaled ×10³ only when printed).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .io import write_text
from .metrics import registry
from .metrics.registry import Metric, metric

__all__ = [
    "COLUMNS",
    "TASK_LABELS",
    "FINDING_METRICS",
    "PERCEPTION_FALLBACKS",
    "decoding_findings",
    "findings",
    "findings_markdown",
    "frame_markdown",
    "headline_rows",
    "perception_index",
    "poster_rows",
    "signal_row",
    "stable_verdict",
    "task_label",
    "theory_markdown",
    "RIDGE_CAPTION", "missing_line", "validity_markdown", "vae_floor",
    "to_latex",
    "verdict",
    "to_markdown",
    "write_tables",
]

#: Plain-text and LaTeX names of the tasks of ``dotlib.degradations.TASKS``.
TASK_LABELS: dict[str, tuple[str, str]] = {
    "sr4": ("SISR ×4", r"SISR $\times 4$"),
    "jpeg10": ("JPEG q=10", r"JPEG $q=10$"),
    "awgn50": ("AWGN σ=50", r"AWGN $\sigma=50$"),
    "sr4_jpeg10": ("SR ×4 + JPEG q=10", r"SR $\times 4$ + JPEG $q=10$"),
    "sr4_awgn50": ("SR ×4 + AWGN σ=50", r"SR $\times 4$ + AWGN $\sigma=50$"),
}


#: The metrics a printed study table shows, in the poster's order (facts from the registry).
COLUMNS: tuple[Metric, ...] = tuple(metric(key) for key in ("psnr", "ssim", "lpips", "fid", "is", "kid", "swd",
                                                             "detail", "latent_w2"))


#: Perceptual indices tried, in order, when the one asked for has no values (FID needs the
#: Inception weights; SWD and detail need none).
PERCEPTION_FALLBACKS = ("fid", "swd", "detail")


def perception_index(table: pd.DataFrame, wanted: str, fallbacks: Sequence[str] = PERCEPTION_FALLBACKS,
                     notes: Mapping[str, str] | None = None) -> tuple[str, str | None]:
    """The perceptual index to plot and tabulate: ``wanted`` when every (task, restorer) of
    ``table`` has values for it, else the first of ``fallbacks`` that has, with a sentence saying
    which index replaced which and why (``notes[wanted]``, the reason the metric is missing,
    when known); the sentence is None when ``wanted`` is used. ``ValueError`` if no index
    has values everywhere.
    """
    groups = [group for _, group in table.groupby(["task", "restorer"], sort=True)] \
        if {"task", "restorer"} <= set(table.columns) else [table]

    def lacking(column: str) -> list[str]:
        return [f"{group.task.iloc[0]} / {group.restorer.iloc[0]}" if "task" in group else "the table"
                for group in groups if column not in group or group[column].notna().sum() == 0]

    missing = lacking(wanted)
    if not missing:
        return wanted, None
    for candidate in fallbacks:
        if candidate != wanted and not lacking(candidate):
            name, replacement = _column_header(wanted), _column_header(candidate)
            where = "any run" if len(missing) == len(groups) else ", ".join(missing)
            reason = re.split(r"\.\s", str((notes or {}).get(wanted) or "").strip())[0].rstrip(".")
            note = (f"{name} has no values in {where}, so the perception-distortion planes show {replacement} "
                    f"instead (perception = {candidate!r}, not {wanted!r})" + (f"; {name}: {reason}" if reason else "")
                    + ".")
            return candidate, note
    raise ValueError(f"column {wanted!r} has no values in {', '.join(missing)}, nor has any of "
                     f"{', '.join(f for f in fallbacks if f != wanted)} in every run: no perceptual index to show")


def _column_header(key: str) -> str:
    """The printed name of a metric key (without its scale), the key itself when unknown."""
    for column in COLUMNS:
        if column.key == key:
            return column.header.split(" ")[0]
    return key


def task_label(task: str, latex: bool = False) -> str:
    """Display name of a task (its key when unknown)."""
    labels = TASK_LABELS.get(task)
    if labels is None:
        return task.replace("_", r"\_") if latex else task
    return labels[1] if latex else labels[0]


def _signal_label(signal: str, alpha: float, restorer: str, latex: bool) -> str:
    if signal == "x":
        return r"$\mathbf{x}$" if latex else "x"
    if signal == "xe":
        return r"$\mathbf{D}(\mathbf{E}(\mathbf{x}))$" if latex else "D(E(x))"
    if signal == "y":
        return r"$\mathbf{y}$" if latex else "y"
    if signal == "x_star":
        return (r"$\mathbf{x}^*$: " + restorer.replace("_", r"\_")) if latex else f"x*: {restorer}"
    if signal == "x_alpha":
        value = f"{alpha + 0.0:g}"  # no "-0"
        return rf"$\hat{{\mathbf{{x}}}}_{{{value}}}$" if latex else f"x̂<sub>{value}</sub>"
    raise ValueError(f"unknown signal {signal!r}")


def _alpha_rows(group: pd.DataFrame, alphas: str | Sequence[float], perception: str) -> list[float]:
    """α values to print: explicit, or "auto" = best PSNR (α ∉ {0, 1}), best ``perception``, then 0."""
    sweep = group[group.signal.eq("x_alpha")]
    if sweep.empty:
        return []
    if alphas != "auto":
        return [float(a) for a in alphas]
    chosen: list[float] = []
    inner = sweep[~np.isclose(sweep.alpha, 0.0) & ~np.isclose(sweep.alpha, 1.0)]
    if "psnr" in inner and inner.psnr.notna().any():
        chosen.append(float(inner.loc[inner.psnr.idxmax(), "alpha"]))
    if perception in inner and inner[perception].notna().any():
        best = float(inner.loc[inner[perception].idxmin(), "alpha"])
        if not any(math.isclose(best, a) for a in chosen):
            chosen.append(best)
    if np.isclose(sweep.alpha, 0.0).any():
        chosen.append(0.0)
    return chosen


def headline_rows(table: pd.DataFrame, fit_split: str = "same", decode: str = "direct") -> pd.DataFrame:
    """The non-sweep rows and the x̂α rows of one fitting design and decoding (tables without
    ``fit_split``/``decode`` columns are returned whole)."""
    keep = table.signal.ne("x_alpha")
    sweep = table.signal.eq("x_alpha")
    if "fit_split" in table:
        sweep &= table.fit_split.eq(fit_split)
    if "decode" in table:
        sweep &= table.decode.eq(decode)
    return table[keep | sweep]


def poster_rows(table: pd.DataFrame, alphas: str | Sequence[float] = (0.5, 0.0),
                perception: str = "swd", fit_split: str = "same", decode: str = "direct") -> pd.DataFrame:
    """The rows of the poster table, in order: one block per (task, restorer).

    Keeps the study-table columns and adds ``block`` (0, 1, ...). ``alphas``: which x̂_α
    rows to keep (default 0.5 and 0, fixed in advance; "auto" picks the best-PSNR α, the
    best-``perception`` α and α = 0 on the measured images themselves, as the poster did:
    that choice is tuned on the evaluation set). Only the sweep of ``fit_split`` and
    ``decode`` is shown.
    """
    needed = {"task", "restorer", "signal", "alpha"}
    if not needed <= set(table.columns):
        raise ValueError(f"the study table needs columns {sorted(needed)}; it has {list(table.columns)}")
    table = headline_rows(table, fit_split, decode)
    blocks = []
    for block, ((_, _), group) in enumerate(table.groupby(["task", "restorer"], sort=False)):
        picked = [group[group.signal.eq(s)].head(1) for s in ("x", "xe", "y", "x_star")]
        for alpha in _alpha_rows(group, alphas, perception):
            rows = group[group.signal.eq("x_alpha") & np.isclose(group.alpha, alpha)]
            if rows.empty:
                raise ValueError(f"no x_alpha row at alpha={alpha} for {group.task.iloc[0]}")
            picked.append(rows.head(1))
        frame = pd.concat(picked)
        blocks.append(frame.assign(block=block))
    if not blocks:
        raise ValueError("the study table is empty")
    return pd.concat(blocks, ignore_index=True)


def _cell(row: pd.Series, column: Metric, latex: bool) -> tuple[str, bool]:
    """Printed value ("mean ± sd" when a finite ``<key>_sd`` exists) and whether it is missing."""
    value = row.get(column.key, math.nan)
    if pd.isna(value):
        return ("---" if latex else "—"), True
    value = float(value)
    if math.isinf(value):
        return (r"$\infty$" if latex else "∞"), False
    text = f"{value * column.scale:.{column.decimals}f}"
    spread = row.get(f"{column.key}_sd", math.nan)
    if not pd.isna(spread) and math.isfinite(float(spread)):
        text += (r" $\pm$ " if latex else " ± ") + f"{float(spread) * column.scale:.{column.decimals}f}"
    return text, False


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def _footnotes(missing: set[str], notes: Mapping[str, str] | None, latex: bool) -> list[str]:
    """One line per missing metric: its name and the reason (``notes``) or a generic one."""
    lines = []
    for column in COLUMNS:
        if column.key in missing:
            reason = (notes or {}).get(column.key, "not computed for these rows")
            if latex:
                lines.append(f"--- {column.latex}: {_latex_escape(reason)}")
            else:
                lines.append(f"— {column.header}: {reason}")
    return lines


def _layout(table: pd.DataFrame, columns: Sequence[Metric], latex: bool, alphas, perception,
            fit_split: str, decode: str) -> tuple[list[list[str]], list[int], set[str]]:
    rows = poster_rows(table, alphas, perception, fit_split, decode)
    body, block_starts, missing = [], [], set()
    previous = None
    for _, row in rows.iterrows():
        first = row.block != previous
        if first:
            block_starts.append(len(body))
            previous = row.block
        label = task_label(str(row.task), latex) if first else ""
        cells = [label, _signal_label(str(row.signal), float(row.alpha), str(row.restorer), latex)]
        for column in columns:
            text, absent = _cell(row, column, latex)
            if absent:
                missing.add(column.key)
            cells.append(text)
        body.append(cells)
    return body, block_starts, missing


def _arrow(column: Metric, latex: bool) -> str:
    if latex and column.higher_is_better is not None:
        return r" $\uparrow$" if column.higher_is_better else r" $\downarrow$"
    return "" if latex else column.arrow


def to_markdown(table: pd.DataFrame, columns: Sequence[Metric] = COLUMNS, alphas=(0.5, 0.0),
                perception: str = "swd", notes: Mapping[str, str] | None = None, fit_split: str = "same",
                decode: str = "direct", caption: str | None = None) -> str:
    """The poster table as GitHub Markdown; ``notes`` maps a metric key to why it is missing;
    ``caption`` is a last footnote (e.g. the note of :func:`perception_index`)."""
    body, _, missing = _layout(table, columns, False, alphas, perception, fit_split, decode)
    header = ["Task", "Signal"] + [c.header + _arrow(c, False) for c in columns]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join([":--", ":--"] + ["--:"] * len(columns)) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    footnotes = _footnotes(missing, notes, False) + ([f"Note: {caption}"] if caption else [])
    if footnotes:
        lines.append("")
        lines += [f"{line}  " for line in footnotes]
    return "\n".join(lines) + "\n"


def to_latex(table: pd.DataFrame, columns: Sequence[Metric] = COLUMNS, alphas=(0.5, 0.0),
             perception: str = "swd", notes: Mapping[str, str] | None = None, fit_split: str = "same",
             decode: str = "direct", caption: str | None = None) -> str:
    """The poster table as a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); ``caption``
    as in :func:`to_markdown`."""
    body, block_starts, missing = _layout(table, columns, True, alphas, perception, fit_split, decode)
    header = ["Task", "Signal"] + [c.latex + _arrow(c, True) for c in columns]
    lines = [r"\begin{tabular}{ll" + "r" * len(columns) + "}", r"\toprule",
             " & ".join(header) + r" \\", r"\midrule"]
    for index, cells in enumerate(body):
        if index in block_starts and index > 0:
            lines.append(r"\midrule")
        lines.append(" & ".join(cells) + r" \\")
    lines.append(r"\bottomrule")
    width = 2 + len(columns)
    footnotes = _footnotes(missing, notes, True) + ([f"Note: {_latex_escape(caption)}"] if caption else [])
    lines += [rf"\multicolumn{{{width}}}{{l}}{{\footnotesize {line}}} \\" for line in footnotes]
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def write_tables(table: pd.DataFrame, folder: str | Path, stem: str = "poster",
                 notes: Mapping[str, str] | None = None, **options) -> tuple[Path, Path]:
    """Write ``<folder>/<stem>.md`` and ``<folder>/<stem>.tex``; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, latex = folder / f"{stem}.md", folder / f"{stem}.tex"
    write_text(to_markdown(table, notes=notes, **options), markdown)
    write_text(to_latex(table, notes=notes, **options), latex)
    return markdown, latex


def frame_markdown(frame: pd.DataFrame, decimals: int = 3) -> str:
    """A small data frame as a Markdown table (floats to ``decimals``, numbers right-aligned)."""
    def cell(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "yes" if value else "no"
        if isinstance(value, (float, np.floating)):
            return f"{value:.{decimals}f}"
        return str(value)

    align = ["--:" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
             else ":--" for c in frame.columns]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def vae_floor(per_crop: pd.DataFrame) -> pd.DataFrame:
    """Where each decoding's mean-PSNR cost comes from (rows of :func:`dotlib.study.per_crop_psnr`
    with ``task`` and ``restorer`` columns): per run and decoding, the crops whose x* is above the VAE floor
    (PSNR of x* > PSNR of D(E(x))), the mean cost (x* − x̂0, dB) over all crops, over those and
    over the others, the share of the summed cost that those crops carry, and how far x̂0 sits
    from the floor on them (mean PSNR of x̂0 − D(E(x)), dB)."""
    rows = []
    for (task, restorer), crops in per_crop.groupby(["task", "restorer"], sort=False):
        above = crops.psnr_x_star > crops.psnr_xe
        for column in (c for c in crops.columns if c.startswith("psnr_x_hat0_")):
            cost = crops.psnr_x_star - crops[column]
            rows.append({"task": task, "restorer": restorer, "decode": column.removeprefix("psnr_x_hat0_"), "crops": len(crops),
                         "above_floor": int(above.sum()), "mean_cost": cost.mean(),
                         "mean_cost_above": cost[above].mean(), "mean_cost_others": cost[~above].mean(),
                         "share_above": cost[above].sum() / cost.sum(),
                         "x_hat0_minus_floor_above": (crops[column] - crops.psnr_xe)[above].mean()})
    return pd.DataFrame(rows)


#: What each number of the ridge ablation is (``dotlib.study`` measures it on fitting crops).
RIDGE_CAPTION = ("Ridge ablation, in-sample: the first 8 source crops of fold 0's fitting photos. "
                 "psnr_cost_db: PSNR of x* minus PSNR of x̂0 over those crops (dB); detail x* and detail x̂0: "
                 "the detail index ×10³ of each against the crops' clean versions (lower is closer); degenerate: "
                 "the ridge leaves the source covariance singular, and the map adds noise where it is.")


def missing_line(missing: Mapping[str, str]) -> str:
    """One line for the metrics a run could not compute (``{metric: reason}``): the metrics that
    share a reason named together, with the reason's first sentence once ("" when none)."""
    reasons: dict[str, list[str]] = {}
    for name, reason in missing.items():
        reasons.setdefault(reason.split(". ")[0].rstrip("."), []).append(name.upper())
    if not reasons:
        return ""
    return "Not computed: " + "; ".join(f"{', '.join(names)} ({reason})" for reason, names in reasons.items()) \
        + ". How to get each: missing_metrics.json."


def signal_row(table: pd.DataFrame, signal: str, alpha: float | None = None) -> pd.Series:
    """The first row of ``signal`` in a study table (at ``alpha`` when given); ``ValueError`` if none."""
    rows = table[table.signal.eq(signal)]
    if alpha is not None:
        rows = rows[np.isclose(rows.alpha, alpha)]
    if rows.empty:
        runs = ", ".join(f"{task} / {restorer}" for task, restorer
                         in table[["task", "restorer"]].drop_duplicates().itertuples(index=False))
        raise ValueError(f"the table ({runs}) has no {signal} row"
                         + (f" at alpha={alpha}" if alpha is not None else ""))
    return rows.iloc[0]


#: The metrics whose paired intervals the findings report (facts from the registry).
FINDING_METRICS = ("psnr", "ssim", "swd", "detail")


def verdict(low: float, high: float, lower_is_better: bool) -> str:
    """"better" / "worse" only where the interval ``[low, high]`` of a difference excludes 0."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if high < 0:
        return "better" if lower_is_better else "worse"
    if low > 0:
        return "worse" if lower_is_better else "better"
    return "no change detected"


def stable_verdict(row: pd.Series, metric: str) -> str:
    """:func:`verdict` of ``d_<metric>``'s interval, or "borderline" where the replicate bootstrap's
    interval (``_lo_rep``, ``_hi_rep``, when the row has one) gives another word."""
    lower_is_better = not registry.metric(metric).higher_is_better
    word = verdict(float(row[f"d_{metric}_lo"]), float(row[f"d_{metric}_hi"]), lower_is_better)
    low, high = (float(row.get(f"d_{metric}{suffix}", math.nan)) for suffix in ("_lo_rep", "_hi_rep"))
    if math.isfinite(low) and math.isfinite(high) and verdict(low, high, lower_is_better) != word:
        return "borderline"
    return word


def _finding(keys: tuple, row: pd.Series, alpha: float) -> dict:
    """One row of :func:`findings`: labels, then per metric the difference, its bounds and its word."""
    entry = dict(zip(("task", "restorer", "fit_split", "decode"), keys))
    entry.update(alpha=float(alpha) + 0.0, n_photos=int(row.n_photos),
                 n_resamples=float(row.get("n_resamples", math.nan)))
    return {**entry, **_metric_words(row)}


def _metric_words(row: pd.Series) -> dict:
    """Per metric of :data:`FINDING_METRICS`: ``d_m``, ``d_m_lo``, ``d_m_hi`` and ``m_verdict``."""
    entry = {}
    for name in FINDING_METRICS:
        entry.update({f"d_{name}{suffix}": float(row[f"d_{name}{suffix}"]) for suffix in ("", "_lo", "_hi")})
        entry[f"{name}_verdict"] = stable_verdict(row, name)
    return entry


def findings(table: pd.DataFrame, alphas: Sequence[float] = (0.0,)) -> pd.DataFrame:
    """Per (task, restorer, fit_split, decode, α): x̂α − x* with paired 95 % intervals.

    Columns: task, restorer, fit_split, decode, alpha, n_photos, n_resamples (bootstrap
    resamples per interval; NaN on streamed runs, whose intervals are normal), and for every
    metric m of :data:`FINDING_METRICS` ``d_m``, ``d_m_lo``, ``d_m_hi`` (raw units) and
    ``m_verdict`` (:func:`stable_verdict`: "better" or "worse" only where the interval
    excludes 0, "borderline" where a replicate bootstrap decides otherwise). One word per
    index: no combined claim is drawn here.
    """
    needed = {"fit_split", "decode", "d_psnr", "d_psnr_lo", "d_psnr_hi"}
    if not needed <= set(table.columns):
        raise ValueError(f"findings need a run_task table with paired intervals; missing {sorted(needed - set(table))}")
    out = []
    sweep = table[table.signal.eq("x_alpha")]
    for keys, group in sweep.groupby(["task", "restorer", "fit_split", "decode"], sort=True):
        for alpha in alphas:
            rows = group[np.isclose(group.alpha, alpha)]
            if not rows.empty:
                out.append(_finding(keys, rows.iloc[0], alpha))
    order = {name: index for index, name in enumerate(("same", "matched", "disjoint"))}
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    frame["_order"] = frame.fit_split.map(order).fillna(9)
    return frame.sort_values(["task", "restorer", "_order", "decode", "alpha"]).drop(columns="_order") \
        .reset_index(drop=True)


def decoding_findings(gaps: pd.DataFrame) -> pd.DataFrame:
    """:func:`findings`' columns for paired differences between decodings (``study.decoding_gaps``
    rows: residual − direct per task, restorer, design and α), one word per metric."""
    if gaps.empty:
        return gaps
    labels = ["task", "restorer", "fit_split", "decode", "alpha"]
    out = pd.DataFrame([{**row[labels].to_dict(), **_metric_words(row)} for _, row in gaps.iterrows()])
    return out.sort_values(["task", "restorer", "fit_split", "decode", "alpha"]).reset_index(drop=True)


def _interval(row, metric: str, scale: float, decimals: int) -> str:
    value, low, high = (row[f"d_{metric}{suffix}"] * scale for suffix in ("", "_lo", "_hi"))
    if not (math.isfinite(low) and math.isfinite(high)):   # streamed runs: set-level indices have none
        return f"{value:+.{decimals}f}"
    return f"{value:+.{decimals}f} [{low:+.{decimals}f}, {high:+.{decimals}f}]"


def findings_markdown(summary: pd.DataFrame) -> str:
    """:func:`findings` as a Markdown table (SWD and detail ×10³): differences x̂α − x* [95 % interval],
    and one word per metric."""
    header = ["task · restorer", "fitting · decoding", "α", "ΔPSNR dB", "ΔSSIM", "ΔSWD ×10³", "Δdetail ×10³",
              "PSNR", "SWD", "detail"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join([":--", ":--"] + ["--:"] * 5 + [":-:"] * 3) + " |"]
    for _, row in summary.iterrows():
        lines.append("| " + " | ".join([
            f"{task_label(row.task)} · {row.restorer}", f"{row.fit_split} · {row.decode}", f"{row.alpha:g}",
            _interval(row, "psnr", 1.0, 2), _interval(row, "ssim", 1.0, 3), _interval(row, "swd", 1e3, 1),
            _interval(row, "detail", 1e3, 1), row.psnr_verdict, row.swd_verdict, row.detail_verdict,
        ]) + " |")
    return "\n".join(lines) + "\n"


def validity_markdown(frame: pd.DataFrame, checks: pd.DataFrame, blind: Mapping[str, Sequence[str]]) -> str:
    """``dotlib.metrics.validity`` results as Markdown: the scores ×10³ per distortion (lower =
    closer to natural), the checks per index, and what each index cannot see."""
    indices = list(frame.columns)
    lines = ["| distortion | " + " | ".join(f"{_column_header(i)} ×10³" for i in indices) + " |",
             "| :-- |" + " --: |" * len(indices)]
    lines += [f"| {name} | " + " | ".join(f"{frame.at[name, i] * 1e3:.1f}" for i in indices) + " |"
              for name in frame.index]
    lines += ["", "| index | clean lowest | grows with blur | grows with noise | may carry a claim (on what it sees) |",
              "| :-- | :-: | :-: | :-: | :-: |"]
    word = {True: "yes", False: "no"}
    lines += [f"| {i} | " + " | ".join(word[bool(checks.at[i, c])] for c in
                                       ("clean_lowest", "monotone_blur", "monotone_noise", "valid")) + " |"
              for i in indices]
    lines += [""] + [f"- {i} cannot see (scores no higher than clean): {', '.join(blind[i]) or 'none of these'}"
                     for i in indices]
    return "\n".join(lines) + "\n"


def theory_markdown(theory: pd.DataFrame) -> str:
    """The theory check per run (``dotlib.study.theory_check`` rows with task, restorer, decode),
    with the assumptions the bound rests on."""
    header = ["task · restorer", "decoding", "PSNR cost of x̂0 (dB) [95 %]", "bound if MMSE", "perfect-perception cost",
              "consistent with the bound", "below the perfect-perception cost", "VAE error / excess",
              "low-pass share", "reason"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join([":--", ":--"] + ["--:"] * 3 + [":-:"] * 2
                                                                   + ["--:"] * 2 + [":--"]) + " |"]
    for _, row in theory.iterrows():
        low, high = row.get("psnr_cost_lo", math.nan), row.get("psnr_cost_hi", math.nan)
        interval = f" [{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else ""
        below = "yes" if math.isfinite(high) and high < row.predicted_cost_db else "no"
        lines.append("| " + " | ".join([
            f"{task_label(row.task)} · {row.restorer}", row.decode, f"{row.psnr_cost_db:.2f}{interval}",
            f"{row.bound_db:.2f}", f"{row.predicted_cost_db:.2f}", "no" if row.exceeds_bound else "yes", below,
            f"{row.vae_share:.2f}", f"{row.lowpass_share:.2f}", row.reason or "",
        ]) + " |")
    notes = ["", "The bound (MSE(x̂0) ≤ 2·MSE(x*), 3.01 dB) assumes an MMSE restorer, the pooled MSE of the set, and "
             "an exact optimal-transport map in pixel space; here x* is an MSE-trained network (not exactly the MMSE "
             "estimator) and the map is fitted on latent patches and decoded, so the check can only be consistent "
             "with the bound, not confirm it. The perfect-perception cost is what an estimator whose outputs follow "
             "p_x would pay, MSE(x*) + W₂²(p_x*, p_x) from pixel patches; a cost whose whole interval lies below it "
             "means that x̂0 is not at p_x."]
    return "\n".join(lines + notes) + "\n"
