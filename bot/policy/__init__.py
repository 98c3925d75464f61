"""What the bot does with a message it has understood, as data the operator can change: the routing table
and the decision it makes (routing.py)."""
