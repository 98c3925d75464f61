"""Everything that leaves the bot reliably: the outbox (outbox.py: replies and follow-ups to the platforms,
claimed and retried) and outgoing webhooks to integrations (webhooks.py)."""
