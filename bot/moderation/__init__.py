"""Community moderation by staff: the queue of messages flagged abusive and what staff do with them
(queue.py)."""
