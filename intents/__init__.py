"""Understanding social posts: intent, sentiment, abuse and requests for a person, from one embedding.

encoder = SentenceEncoder.load()          # the fine-tuned MiniLM in intents/model/default (ONNX Runtime)
understander = Understander.load()        # its heads
understanding = understander.understand(text, encoder.encode([text])[0])

The runtime needs onnxruntime, tokenizers and numpy only; training (`intents.train_encoder`) needs the
`train` extra (torch).
"""

from intents.encoder import VARIANTS, EncoderLoadError, SentenceEncoder, load_encoder, model_dir
from intents.heads import HeadFileError, HeadsError
from intents.understand import INTENTS, SENTIMENTS, Understander, Understanding

__all__ = [
    "INTENTS",
    "SENTIMENTS",
    "VARIANTS",
    "EncoderLoadError",
    "HeadFileError",
    "HeadsError",
    "SentenceEncoder",
    "Understander",
    "Understanding",
    "load_encoder",
    "model_dir",
]
