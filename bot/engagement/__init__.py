"""Keeping in touch with a customer: follow-ups on whichever channel reaches them (followups.py), their
satisfaction rating (csat.py) and one customer across channels, linked by proof (identity.py)."""
