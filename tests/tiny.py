"""Tiny random causal LMs, tokenizers and LoRA adapters built offline, for fast model tests."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a tiny tokenizer for tests",
    "what is the capital of france? paris is the capital",
    "one two three four five six seven eight nine ten",
    "models generate text one token at a time",
    "adapters change the outputs of the base model",
    "batching many prompts together makes generation faster",
    "user assistant system answer question reply",
]

PROMPTS = [
    "hello",
    "what is the capital of france? tell me in one word please",
    "one two three",
    "models generate text one token at a time, and batching makes generation faster",
    "the quick brown fox",
]
"""Chat prompts of different lengths for the provider tests (user turns)."""

# special tokens first: "<|im_end|>" (the EOS) gets id 0
SPECIAL_TOKENS = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]


def make_tokenizer(directory: Path | None = None):  # -> PreTrainedTokenizerFast
    """A byte-level BPE tokenizer (about 300 tokens) trained in memory, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    if directory is not None:
        fast.save_pretrained(directory)
    return fast


def make_model(
    directory: Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    zero_head: bool = False,
    tied: bool = False,
) -> Path:
    """Save a tiny random Llama (plus tokenizer) to ``directory`` and return it.

    ``zero_head=True`` zeroes the output layer, so every logit ties and greedy decoding picks
    token 0, the EOS: the model answers with an immediate end of sequence. ``tied=True`` shares
    the input embeddings with the output head, as SmolLM2 does.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = make_tokenizer(directory)
    config = LlamaConfig(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
        tie_word_embeddings=tied,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        # larger weights than the default init give decisive (tie-free) greedy choices
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0, 0.3)
        if zero_head:
            model.lm_head.weight.zero_()
    model.save_pretrained(directory)
    return directory


def make_adapter(base_dir: Path, directory: Path, *, seed: int) -> Path:
    """Save a LoRA adapter for ``base_dir`` with random, nonzero A and B weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(directory)
    return directory
