"""The committed results say what their numbers support (issue #20): every finding rests on
≥ 2000 paired resamples, its word agrees with its own interval and with the replicate
bootstrap unless labelled borderline, and the perception indices that carry claims pass the
validity checks on the pool."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dotlib import tables
from dotlib.pipeline import read_study_table

RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def findings() -> pd.DataFrame:
    return pd.read_csv(RESULTS / "tables" / "findings.csv")


def test_findings_rest_on_enough_resamples_and_name_one_word_per_index(findings) -> None:
    assert (findings.n_resamples >= 2000).all()
    assert "paper_claim" not in findings and {"d_psnr", "d_psnr_lo", "d_psnr_hi"} <= set(findings.columns)


@pytest.mark.parametrize("metric", tables.FINDING_METRICS)
def test_each_word_is_its_interval_or_borderline(findings, metric) -> None:
    lower_is_better = not tables.registry.metric(metric).higher_is_better
    for _, row in findings.iterrows():
        word = tables.verdict(row[f"d_{metric}_lo"], row[f"d_{metric}_hi"], lower_is_better)
        assert row[f"{metric}_verdict"] in (word, "borderline"), (row.task, row.fit_split, row.decode, row.alpha)


def test_the_per_task_tables_hold_the_replicate_that_decides_borderline(findings) -> None:
    """Recompute every word from the per-task metrics (both bootstrap draws): the same words."""
    table = pd.concat([read_study_table(path) for path in sorted((RESULTS / "tasks").glob("*/metrics.csv"))])
    again = tables.findings(table, alphas=(0.0, 0.5))
    merged = findings.merge(again, on=["task", "restorer", "fit_split", "decode", "alpha"], suffixes=("", "_again"))
    assert len(merged) == len(findings)
    for metric in tables.FINDING_METRICS:
        assert (merged[f"{metric}_verdict"] == merged[f"{metric}_verdict_again"]).all(), metric


def test_the_indices_that_carry_claims_pass_the_validity_checks() -> None:
    frame = pd.read_csv(RESULTS / "tables" / "index_validity.csv").set_index("distortion")
    from dotlib.metrics.validity import validity_checks

    checks = validity_checks(frame)
    assert checks.loc[["swd", "detail"], "valid"].all()
