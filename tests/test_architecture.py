"""The README's architecture map stays true to the tree: every package of bot/ is on it, and nothing on it
is gone (the import contracts themselves run in CI as `lint-imports`)."""

from __future__ import annotations

import re

from tests.conftest import REPO


def _architecture_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Architecture")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def test_every_package_of_bot_is_on_the_readme_map_and_every_package_on_it_exists():
    packages = {p.parent.name for p in (REPO / "bot").glob("*/__init__.py")}
    lines = _architecture_section().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("bot/ "))
    mapped = set()
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        mapped |= set(re.findall(r"\b([a-z_]+)/(?=\s)", line))
    assert mapped == packages, f"on the map only: {mapped - packages}; in the tree only: {packages - mapped}"


def test_the_chain_on_the_readme_is_the_chain_in_the_code():
    from bot.pipeline.chain import STEPS

    lines = _architecture_section().splitlines()
    start = next(i for i, line in enumerate(lines) if "decide (bot/pipeline/chain.py)" in line)
    drawn = " -> ".join(lines[start + 1 : start + 3]).replace("then the reviews:", "")
    assert [name.strip() for name in drawn.split("->")] == [step.name for step in STEPS]


def test_sessions_are_opened_one_way():
    """`session_scope` (bot/crm/db.py) is the one way to open a database session: a bare `Session(engine)`
    would skip its commit-or-rollback and, for a read, take SQLite's write lock (issue 19)."""
    bare = re.compile(r"\bSession\((?!bind)")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "bot").rglob("*.py"))
        if path.name != "db.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bare.search(line) and "class " not in line
    ]
    assert not found, f"open sessions with bot.crm.db.session_scope: {found}"
