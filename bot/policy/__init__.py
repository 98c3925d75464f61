"""What the bot does with a message it has understood, as data the operator can change: the routing table and
the one decision type (routing.py), and every text the bot says, with per-language variants (templates.py)."""
