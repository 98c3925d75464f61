"""What marketers read: the response log and its CSV exports (response_log.py), the dashboard's figures
(dashboard.py) and the ideas board (ideas.py)."""
