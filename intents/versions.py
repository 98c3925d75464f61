"""Versions of the heads that the learning loop installs (`socialbot intents train --from-crm`).

Under one root folder (`<data dir>/heads`): `v1/`, `v2/`, ... each a complete heads folder (`intent.npz`,
`sentiment.npz`, `abusive.npz`) with a `manifest.json` (when, from which corrections, the before / after
figures) and, once anything was calibrated, a `calibration.json` (settings learnt with the heads, such as the
knowledge base's answer threshold; a version carries its base's unless it replaces them), and a file
`current` naming the active version. No `current` file, or one saying `shipped`, means
the heads shipped in the package. Workers read `current` at start and at each knowledge refresh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from intents.heads import Head, HeadsError
from intents.understand import HEAD_NAMES, shipped_heads_dir

__all__ = ["SHIPPED", "HeadVersionError", "HeadVersions"]

SHIPPED = "shipped"
CALIBRATION = "calibration.json"
_VERSION = re.compile(r"v([1-9][0-9]*)")


class HeadVersionError(HeadsError):
    """A version that does not exist, or nothing to roll back to; the message says which."""


@dataclass(frozen=True)
class HeadVersions:
    """The installed versions of the heads under `root`, on top of the heads shipped for `variant` (a model
    variant, intents.encoder.VARIANTS: each variant's versions have their own root)."""

    root: Path
    variant: str = "default"

    def versions(self) -> list[str]:
        """The installed versions, oldest first (without "shipped", which is always there)."""
        if not self.root.is_dir():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
        return sorted(found, key=lambda name: int(name[1:]))

    def current(self) -> str:
        """The active version: "v<N>" or "shipped"."""
        path = self.root / "current"
        return path.read_text(encoding="utf-8").strip() if path.is_file() else SHIPPED

    def folder(self, version: str) -> Path:
        """The heads folder of `version` (the package's own for "shipped").

        Raises:
            HeadVersionError: no such version is installed.
        """
        if version == SHIPPED:
            return shipped_heads_dir(self.variant)
        if version not in self.versions():
            known = ", ".join([SHIPPED, *self.versions()])
            raise HeadVersionError(f"no heads version {version!r} in {self.root} (installed: {known})")
        return self.root / version

    def manifest(self, version: str) -> dict:
        """What `version`'s manifest says ({} for "shipped")."""
        if version == SHIPPED:
            return {}
        return json.loads((self.folder(version) / "manifest.json").read_text(encoding="utf-8"))

    def calibration(self, version: str) -> dict:
        """What `version` calibrated besides the heads ({} for "shipped" and for a version without any)."""
        if version == SHIPPED:
            return {}
        path = self.folder(version) / CALIBRATION
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def install(
        self, heads: dict[str, Head], base: str, manifest: dict, calibration: dict | None = None
    ) -> str:
        """Write `heads` as the next version, the other heads copied from version `base`, and make it active.
        `calibration` updates what `base` calibrated (kept as it was when None).

        Returns the new version's name.
        """
        installed = self.versions()
        version = f"v{int(installed[-1][1:]) + 1 if installed else 1}"
        staging = self.root / f".{version}.part"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        base_folder = self.folder(base)
        for name in HEAD_NAMES:
            if name in heads:
                heads[name].save(staging / f"{name}.npz")
            else:
                shutil.copyfile(base_folder / f"{name}.npz", staging / f"{name}.npz")
        calibrated = {**self.calibration(base), **(calibration or {})}
        if calibrated:
            text = json.dumps(calibrated, indent=2) + "\n"
            (staging / CALIBRATION).write_text(text, encoding="utf-8")
        manifest = {"version": version, "base": base, **manifest}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        staging.rename(self.root / version)
        self.activate(version)
        return version

    def activate(self, version: str) -> None:
        """Make `version` the active one (atomically: a worker never reads half a name).

        Raises:
            HeadVersionError: no such version is installed.
        """
        self.folder(version)
        self.root.mkdir(parents=True, exist_ok=True)
        part = self.root / "current.part"
        part.write_text(version + "\n", encoding="utf-8")
        os.replace(part, self.root / "current")

    def rollback(self, version: str | None = None) -> str:
        """Make `version` active, by default the one before the active one ("shipped" before v1).

        Raises:
            HeadVersionError: an unknown version, or the shipped heads are already active.
        """
        if version is None:
            order = [SHIPPED, *self.versions()]
            current = self.current()
            if current == SHIPPED:
                raise HeadVersionError("the shipped heads are active: there is no earlier version")
            version = order[order.index(current) - 1] if current in order else SHIPPED
        self.activate(version)
        return version
