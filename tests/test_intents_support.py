"""Shared, process-wide loaders for the intents tests: the real encoder is loaded once per session."""

from __future__ import annotations

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@functools.cache
def shared_encoder():
    from intents.encoder import load_encoder

    return load_encoder(threads=2)  # the shipped model, as the product runs it


@functools.cache
def shared_understander():
    from intents.understand import Understander

    return Understander.load()
