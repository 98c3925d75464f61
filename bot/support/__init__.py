"""People taking over from the bot: who speaks in a conversation (handoff.py), what staff see and do
(conversations.py), staff accounts (staff.py), and the Slack support channel (slack_posts.py posts
escalations, slack_desk.py is what staff do there)."""
