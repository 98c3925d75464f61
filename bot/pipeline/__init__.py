"""The one path every inbound message takes (inbound.py) and the steps that decide what the bot does with
it (steps/)."""
