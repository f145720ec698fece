"""The training engine: models and tokenizer (`models`), SFT and RL trainers, callbacks, checkpoints.

Everything here imports torch and transformers; the analysis layer (flops, scaling, phases) never
imports this package.
"""

from retu.engine.models import INSTRUCTION, base_model, build_tiny_model, build_tokenizer, load_model, tiny_config

__all__ = ["INSTRUCTION", "base_model", "build_tiny_model", "build_tokenizer", "load_model", "tiny_config"]
