"""Parts of the test set-up that may be missing on a developer's machine: PostgreSQL, Debian's chromium, the
shared data sets, Dovecot. Locally a test that needs a missing part skips with the reason; where
`SOCIALBOT_REQUIRE` names the part (CI sets `postgres,chromium,datasets,dovecot`) it fails instead, so a
green CI run never hides a test that did not run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["KNOWN_PARTS", "missing_part", "required_parts"]

KNOWN_PARTS = frozenset({"postgres", "chromium", "datasets", "dovecot"})


def required_parts() -> frozenset[str]:
    """The parts named in `SOCIALBOT_REQUIRE` (comma-separated).

    Raises:
        pytest.UsageError: a name that is not one of KNOWN_PARTS (a typo would otherwise require nothing).
    """
    named = {part.strip() for part in os.environ.get("SOCIALBOT_REQUIRE", "").split(",") if part.strip()}
    unknown = named - KNOWN_PARTS
    if unknown:
        raise pytest.UsageError(
            f"SOCIALBOT_REQUIRE: unknown part(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KNOWN_PARTS))}"
        )
    return frozenset(named)


def missing_part(part: str, reason: str, *, module: bool = False) -> NoReturn:
    """Skip the test (or the whole module, during collection) for a missing `part`, or fail when it is
    required."""
    assert part in KNOWN_PARTS, part
    if part in required_parts():
        pytest.fail(f"{part} is required here (SOCIALBOT_REQUIRE) but missing: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=module)
