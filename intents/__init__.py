"""Understanding social posts: intent, sentiment, abuse and requests for a person, from one embedding.

encoder = SentenceEncoder.load()
understander = Understander.load()
understanding = understander.understand(text, encoder.encode([text])[0])
"""

from intents.encoder import EncoderLoadError, SentenceEncoder
from intents.heads import HeadFileError, HeadsError
from intents.understand import INTENTS, SENTIMENTS, Understander, Understanding

__all__ = [
    "INTENTS",
    "SENTIMENTS",
    "EncoderLoadError",
    "HeadFileError",
    "HeadsError",
    "SentenceEncoder",
    "Understander",
    "Understanding",
]
