"""What a message's words say beside the heads (bot/policy/cues.py): plain English patterns, checked on
sentences written for these tests (not rows of the sample brand's traffic)."""

from __future__ import annotations

import pytest

from bot.policy.cues import read_cues


@pytest.mark.parametrize(
    "text",
    [
        "can't recommend these gloves enough",
        "couldn't be happier with the new stove",
        "never had boots this comfy straight out of the box",
        "my old rucksack is still going strong after 8 years",
        "two weeks in the alps and not a single leak",
        "can't fault the service at the Keswick shop",
        "no complaints at all, worth every penny",
    ],
)
def test_praise_said_with_a_negation_is_praise_and_names_no_problem(text):
    cues = read_cues(text)
    assert cues.praise and not cues.problem and not cues.unresolved, cues


@pytest.mark.parametrize(
    "text",
    [
        "still waiting for my refund",
        "never arrived, can't believe it",
        "the zip broke after a week",
        "poor quality stitching on the hood",
        "delivery slot missed again",
    ],
)
def test_a_problem_is_still_a_problem(text):
    cues = read_cues(text)
    assert cues.problem and not cues.praise, cues


@pytest.mark.parametrize(
    ("text", "sarcastic"),
    [
        ("love that for me 🙃", True),
        ('thanks for the "next day" delivery, a week later', True),
        ("oh brilliant, the wrong colour again", True),
        ("great, another e-mail saying sorry", True),
        ("you kept me on hold an hour, thanks a lot", True),
        ('the "Ridge 45" is a great bag', False),  # a capitalised quote is a name
        ("thanks a lot for your help yesterday!", False),
        ("great service as always", False),
    ],
)
def test_sarcasm(text, sarcastic):
    cues = read_cues(text)
    assert cues.sarcasm is sarcastic
    assert not (sarcastic and cues.praise)


@pytest.mark.parametrize(
    ("text", "report"),
    [
        ("ordered a medium and got a large", True),
        ("i ordered the green tent but you sent the blue one", True),
        ("we bought two stoves and they both leak", True),
        ("what size should i order?", False),
        ("if i order today will it come tomorrow", False),
    ],
)
def test_a_report_of_what_happened(text, report):
    assert read_cues(text).report is report


@pytest.mark.parametrize(
    "text",
    ["the sole came away, is that under warranty?", "would this be covered by the guarantee"],
)
def test_asking_whether_a_new_problem_is_covered_asks_what_to_do(text):
    assert read_cues(text).what_to_do
