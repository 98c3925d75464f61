"""The `socialbot` command (Typer): main.py is the root with serve, demo, chat, db and channels; one module
per command group (contacts, export, intents, knowledge, setup, staff, webhooks)."""

from bot.cli.main import app, main

__all__ = ["app", "main"]
