"""The chain's steps (run in the order of bot/pipeline/chain.py): each is a function of the message's `Turn`
that may decide what the bot does, or review what was decided. A step never imports the chain that runs it.

engagement.py: a rating, the e-mail verification flow; data_rights.py: "what do you know about me" /
"delete my data"; routing.py: listening, greeting, human owns, policy; language.py: the customer's language;
moderation.py: flagged messages, blocked authors, flame wars.
"""
