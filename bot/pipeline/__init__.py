"""The one path every inbound message takes (inbound.py: store, understand, decide, carry out, deliver).

The decision is one explicit chain (chain.py) of small steps (steps/) over one value, the message's `Turn`
(turn.py); what the decision then does (queue the reply, escalate, record the idea) is outcome.py.
"""
