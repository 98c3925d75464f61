"""socialbot: a social-channel responder with a lightweight social CRM."""

__version__ = "0.1.0"
