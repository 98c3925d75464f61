"""What every part of a running worker shares, and nothing above it: the settings, the `Runtime` container
(container.py), the models and their one encoder pass per message (analysis.py, batching.py, languages.py),
the pollers' advisory locks (leadership.py), metrics and logging. Imports only bot.crm and bot.policy."""
