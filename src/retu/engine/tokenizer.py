"""The character-level tokenizer of retu's tiny models, with a ChatML chat template.

One token per byte, so one per ASCII character: `\\boxed{18}` and `7+5=12` tokenize the same way
wherever they appear and a tiny model never has to learn multi-character merges. It is Qwen2's
byte-level BPE with no merges: ids 0-2 are the special tokens `<|endoftext|>` (padding, document
separator), `<|im_start|>`, `<|im_end|>` (end of an assistant turn, the generation stop token), and
ids 3-258 are the 256 bytes in GPT-2's byte-to-character mapping (byte b has id 3 + b), so any text
round-trips. Being a `Qwen2Tokenizer` matters: `AutoTokenizer.from_pretrained` rebuilds a qwen2
checkpoint's tokenizer as `Qwen2Tokenizer` whatever `tokenizer_config.json` says, and a tokenizer of
any other pipeline would silently change (newlines dropped) on reload. The vocabulary is fixed, so the
tokenizer is identical on every machine and never needs a file or a download.

Reference: ChatML as used by Qwen2 (`<|im_start|>role\\ncontent<|im_end|>\\n`); TRL's
`qwen2_5_training.jinja` for the `{% generation %}` markers that `assistant_only_loss` needs.
"""

from __future__ import annotations

from transformers import Qwen2Tokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)
VOCAB = SPECIAL_TOKENS + tuple(bytes_to_unicode()[b] for b in range(256))
PAD_ID, IM_START_ID, IM_END_ID = 0, 1, 2
MODEL_MAX_LENGTH = 512

# ChatML without a default system turn (a tiny model should not spend tokens on one). The assistant's
# content and its <|im_end|> sit inside {% generation %} so TRL's assistant-only loss trains the stop.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer() -> Qwen2Tokenizer:
    """Build the character-level tokenizer (deterministic, offline).

    Returns:
        A `Qwen2Tokenizer` with `len(tokenizer) == len(VOCAB)` (259), eos `<|im_end|>`, pad
        `<|endoftext|>`, right padding and the ChatML `chat_template`; it round-trips through
        `save_pretrained` / `AutoTokenizer.from_pretrained`.

    Example:
        >>> tok = build_tokenizer()
        >>> tok("7+5=12")["input_ids"]
        [58, 46, 56, 64, 52, 53]
        >>> tok.decode(tok("7+5=12")["input_ids"])
        '7+5=12'
    """
    return Qwen2Tokenizer(
        vocab={token: i for i, token in enumerate(VOCAB)},
        merges=[],
        unk_token=PAD_TOKEN,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        padding_side="right",
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
