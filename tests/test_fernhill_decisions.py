"""The sample brand routes right (issue 17, item 7): the `dev` rows of tests/data/fernhill_traffic.csv through
the whole pipeline with the shipped models, each as a new customer's first message (`route_row` of
scripts/eval_fernhill.py, which reports the figure on the `test` rows). A floor below the measured figure:
the issue asks for 95 %; measured 93/115 (80.9 %) with the heads shipped on 2026-12-04, 112/115 (97.4 %) once
the policy read the words beside the heads and the knowledge base handed specification, bulk-order and hire
questions over (these rows chose those changes, so the floor leaves room for another encoder), so a change
that makes the product decide worse on the brand's own kind of traffic fails here."""

from __future__ import annotations

import csv
import importlib.util

from tests.conftest import REPO

FLOOR = 0.90


def _eval_script():
    spec = importlib.util.spec_from_file_location("eval_fernhill", REPO / "scripts" / "eval_fernhill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_brand_decides_right_on_its_dev_traffic(runtime):
    script = _eval_script()
    rows = [row for row in csv.DictReader(script.DATA.open(encoding="utf-8")) if row["split"] == "dev"]
    assert len(rows) == 115
    wrong = []
    for number, row in enumerate(rows):
        action, article = script.route_row(runtime, number, row)
        if not script.is_right(row, action, article):
            wrong.append(f"{row['expected_action']} -> {action} {article or ''}: {row['text'][:60]}")
    right = 1 - len(wrong) / len(rows)
    assert right >= FLOOR, f"{right:.1%} right (floor {FLOOR:.0%}); wrong:\n" + "\n".join(wrong)
