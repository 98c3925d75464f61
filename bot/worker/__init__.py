"""A running socialbot: build a worker's `Runtime` from the settings (build.py), the platform adapters
(connectors.py), its scheduled jobs (scheduler.py) and one or many worker processes behind the web app
(serve.py)."""
