"""Quality of the shipped heads on held-out public data (skipped when ../shared/datasets is absent).

Each test guards the level measured when the heads were trained (a regression guard); the issue's bar is
checked where the shipped models reach it; the bars they miss are in intents/MODEL_CARD.md, not in xfail tests
that could never fail. The cross-validated figures (complaints, sentiment) retrain heads per fold and run in
scripts/eval_intents.py, not here, to keep this file within a few minutes.
"""

from __future__ import annotations

import pytest

from intents import public_data
from tests.parts import missing_part
from tests.test_intents_support import shared_encoder, shared_understander

pytestmark = pytest.mark.slow

if not (public_data.datasets_dir() / "README.md").exists():
    missing_part("datasets", f"public data sets not found at {public_data.datasets_dir()}", module=True)


@pytest.fixture(scope="module")
def recommendation():
    from intents.quality import recommendation_figures

    return {f.name: f for f in recommendation_figures(shared_encoder(), shared_understander())}


@pytest.fixture(scope="module")
def abusive():
    from intents.quality import abusive_figures

    return {f.name: f for f in abusive_figures(shared_encoder(), shared_understander())}


def test_recommendation_on_semeval_trial_set(recommendation):
    assert recommendation["recommendation_f1_A_trial_test"].value >= 0.79
    assert recommendation["recommendation_f1_A_trial_test_balanced_threshold"].value >= 0.83


def test_recommendation_reaches_the_issue_bar(recommendation):
    # 0.810 with the fine-tuned encoder (0.773 on the frozen one), on the half-suggestion trial set.
    figure = recommendation["recommendation_f1_A_trial_test"]
    assert figure.value >= figure.bar


def test_abusive_on_tweeteval_val(abusive):
    # Abuse aimed at people (issue 25), TweetEval val under the project's relabel: 0.602 with the fine-tuned
    # encoder (0.527 on the frozen one).
    assert abusive["abusive_f1"].value >= 0.58


def test_rude_but_legitimate_requests_are_not_flagged(abusive):
    assert abusive["rude_requests_flagged"].value <= 0.02
