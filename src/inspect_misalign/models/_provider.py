"""The ``misalign/`` Inspect model provider: local checkpoints, adapters, batched generation.

``--model misalign/<checkpoint>`` where checkpoint is ``default`` (the embedded SmolLM2-135M-Instruct),
a name from the checkpoint registry (``inspect-misalign models``) or a local Hugging Face model
directory (safetensors only). A PEFT adapter directory works too; its base is read from its
adapter config.

Model args (``-M key=value``):

- ``adapter``: PEFT adapter directory or registered adapter name, applied to the checkpoint.
- ``batch_size`` (32): most requests per batched ``generate``. Batches fill only if Inspect
  sends that many requests at once: pass ``--max-connections`` of at least ``batch_size``
  (without it Inspect's adaptive concurrency starts at 20 and grows).
- ``batch_settle_ms`` (20): how long the batcher waits for more requests to arrive (see
  :mod:`inspect_misalign.models._batcher`); 0 generates whatever is queued at once.
- ``device`` (``cuda:0`` if available, else ``cpu``) and ``dtype`` (bf16 on CUDA, fp32 on CPU;
  ``auto`` keeps the checkpoint's).
- ``threads``: torch CPU threads (else ``$INSPECT_MISALIGN_THREADS``, else torch's default).
- ``lanes`` (``auto``): batches run concurrently on this many worker threads, each with an equal
  share of the CPU threads and at most ``ceil(batch_size / lanes)`` requests. ``auto`` is 2 on a
  CPU with two or more threads (two 1-thread lanes decode faster than one 2-thread lane on a
  2-core machine; ``benchmarks/bench_provider.py`` compares them) and 1 on a GPU. Batches for
  different adapters overlap when they are plain LoRA adapters (rows are then routed to their
  adapters per lane, and a lane takes up to ``batch_size`` requests when many wait). The first
  provider of a base in a process sets its lanes.
- ``trust_remote_code`` (false), ``attn_implementation`` (transformers' default).
- ``hidden_states`` (false): when true, each output's ``metadata["hidden_states"]`` holds
  ``{"layer": i, "prompt_mean": [...], "prompt_last": [...]}``: the hidden states of the prompt
  (chat-templated, generation prompt included) at layer ``hidden_layer`` (default -1, the last;
  0 is the embeddings), averaged over prompt tokens and at the last prompt token.
- ``check_base`` (true): refuse an adapter whose declared base is a different checkpoint.
- ``merge_adapters`` (true): run a batch of one plain LoRA adapter with its weights merged into
  the base (exactly restored afterwards; as fast as the base, at the cost of a copy of the
  adapted weights); false keeps the LoRA branches separate (peft's own numerics).

- ``share_prefix`` (true): when the prompts of a batch start with the same 16 or more tokens
  (a shared system prompt, the chat template's header), compute those tokens' keys and values
  once and reuse them for every row (results agree with separate prefill up to float rounding).
- ``continuous`` (``auto``): decode greedy requests (without logprobs, hidden states or stop
  sequences) by continuous batching: a row is answered the step it finishes and waiting requests
  join the running batch (see :mod:`inspect_misalign.models._continuous`). ``auto`` does so when
  a request may generate at least 128 tokens (long, uneven answers, where it pays; for short ones
  one ``generate`` call per batch is faster on CPU); true/false force it on/off.
- ``gc_freeze`` (true): pause the garbage collector while torch/transformers import and weights
  load, then move the process's long-lived objects out of its reach (``gc.freeze()``; see
  :mod:`inspect_misalign.models._heap`): full collections and interpreter exit get cheaper.

Per request, ``GenerateConfig(extra_body=...)`` asks for teacher-forced scores instead of a
generation (``{"continuations": [...], "continuation_eos": bool}`` -> ``metadata["continuations"]``,
see :mod:`inspect_misalign.models._score`) and for prompt hidden states at several layers
(``{"hidden_layers": [...] | "all"}`` -> ``metadata["hidden_states_by_layer"]``); docs/models.md
gives the formats.

Requests for different plain LoRA adapters of one base (and for the base) can share a batch
(peft's per-row ``adapter_names``); a full batch of one adapter is preferred.

Decoding is greedy unless the generate config asks for sampling (``temperature > 0``, or
``top_p``/``top_k`` without a temperature); with a ``seed`` each request samples from its own
generator, seeded by (seed, prompt, Inspect epoch), so the result does not depend on the batch
(:mod:`inspect_misalign.models._sampling`). Each output reports unpadded token counts, a stop
reason (``stop`` or ``max_tokens``) and, when ``logprobs``/``top_logprobs`` are asked for, log
probabilities. Tools are not supported. Weights load once per process per base, on a background
thread that starts when the provider is constructed (so imports and loading overlap Inspect's
eval setup); adapters of one base share its weights and its batch queue.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    TopLogprob,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from inspect_misalign._errors import MisalignError
from inspect_misalign.models._batcher import wait_future
from inspect_misalign.models._heap import freeze_heap, heap_settling
from inspect_misalign.models._options import (
    as_auto_bool,
    as_bool,
    as_float,
    as_int,
    as_str,
    check_generate_config,
    parse_extra,
)
from inspect_misalign.models._resolve import ResolvedCheckpoint, resolve_checkpoint
from inspect_misalign.models._weights_lock import weights_lock

_DEFAULT_CONFIG = GenerateConfig()

CONSTRUCTIONS = 0
"""How many provider instances were constructed in this process."""
CONTINUOUS_MIN_TOKENS = 128
"""``continuous=auto`` decodes by continuous batching from this many new tokens per request on
(``benchmarks/bench_continuous.py``: 1.00x at 64 new tokens, 1.38x at 160 on the 2-core CPU)."""

_KNOWN_ARGS = {
    "adapter",
    "batch_size",
    "continuous",
    "batch_settle_ms",
    "device",
    "dtype",
    "threads",
    "trust_remote_code",
    "attn_implementation",
    "hidden_states",
    "hidden_layer",
    "check_base",
    "merge_adapters",
    "share_prefix",
    "gc_freeze",
    "lanes",
}


class MisalignAPI(ModelAPI):
    """Inspect ModelAPI for local checkpoints and PEFT adapters (see the module docstring)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = _DEFAULT_CONFIG,
        **model_args: Any,
    ) -> None:
        global CONSTRUCTIONS
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        unknown = sorted(set(model_args) - _KNOWN_ARGS)
        if unknown:
            raise MisalignError(
                f"unknown model arg(s) for misalign/: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN_ARGS))}"
            )
        check_generate_config(config)  # before any weights load (the CLI's --temperature etc.)
        args = model_args
        self.adapter: str | None = as_str(args.get("adapter"))
        self.batch_size = as_int(args.get("batch_size"), "batch_size", 32)
        if self.batch_size < 1:
            raise MisalignError(f"-M batch_size= must be at least 1, got {self.batch_size}")
        self.settle = as_float(args.get("batch_settle_ms"), "batch_settle_ms", 20.0) / 1000
        self.device: str | None = as_str(args.get("device"))
        self.dtype: str | None = as_str(args.get("dtype"))
        self.threads = args.get("threads")
        self.trust_remote_code = as_bool(args.get("trust_remote_code"), "trust_remote_code")
        self.attn_implementation: str | None = as_str(args.get("attn_implementation"))
        self.hidden_states = as_bool(args.get("hidden_states"), "hidden_states")
        self.hidden_layer = as_int(args.get("hidden_layer"), "hidden_layer", -1)
        check_base = as_bool(args.get("check_base"), "check_base", True)
        self.merge_adapters = as_bool(args.get("merge_adapters"), "merge_adapters", True)
        self.share_prefix = as_bool(args.get("share_prefix"), "share_prefix", True)
        self.continuous = as_auto_bool(args.get("continuous", "auto"), "continuous")
        self.gc_freeze = as_bool(args.get("gc_freeze"), "gc_freeze", True)
        from inspect_misalign.models._threads import requested_lanes, requested_threads

        if self.threads is not None:
            requested_threads(self.threads)  # validate now
        self.lanes = args.get("lanes")
        requested_lanes(self.lanes)
        # cheap checks (names, directories, adapter/base fit) before any weights load
        self.checkpoint: ResolvedCheckpoint = resolve_checkpoint(
            model_name, adapter=self.adapter, check_base=check_base
        )
        self._load_lock = threading.Lock()
        self._loaded: Future[tuple[Any, str | None]] | None = None
        _register_model_info(model_name, self.checkpoint)
        self._announcement = (self.checkpoint, self.device, self.dtype)
        if self.checkpoint.adapter_dir is not None:
            with _announced_lock:
                _announced.append(self._announcement)
        _freeze_once(self.gc_freeze)
        # start loading now: torch/transformers imports and the weights overlap Inspect's eval setup
        self._ensure_loaded()
        CONSTRUCTIONS += 1

    # --- Inspect hooks -----------------------------------------------------------------------

    def max_tokens(self) -> int | None:
        from inspect_ai._util.constants import DEFAULT_MAX_TOKENS

        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return self.batch_size

    def connection_key(self) -> str:
        return f"{self.model_name}|{self.adapter}"

    def collapse_user_messages(self) -> bool:
        return True

    def close(self) -> None:
        """Weights stay in the process-wide cache (other models may share them)."""

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise NotImplementedError(
                "the misalign/ provider does not support tools; remove them from the task "
                "or use a provider with tool calling"
            )
        check_generate_config(config)
        extra = parse_extra(config.extra_body)
        base, adapter_name = await wait_future(self._ensure_loaded())
        from inspect_misalign.models._engine import submit_key
        from inspect_misalign.models._generate import GenParams, Prompt
        from inspect_misalign.models._hidden import hidden_count, resolve_layers

        if extra.hidden_layers is not None:
            resolve_layers(extra.hidden_layers, hidden_count(base.model.config))  # range, before queueing
        prompt, add_special = _render_prompt(base.tokenizer, input)
        if extra.scores_only:
            from inspect_misalign.models._score import ScoreParams, ScoreRequest

            ask = ScoreRequest(extra.continuations, extra.continuation_eos, extra.hidden_layers)
            key: Any = ScoreParams(adapter_name, add_special_tokens=add_special, merge=self.merge_adapters)
            payload = Prompt(prompt, adapter_name, ask)
        else:
            sampling = _wants_sampling(config)
            seeded = sampling and config.seed is not None
            max_new_tokens = config.max_tokens or self.max_tokens() or 2048
            key = GenParams(
                adapter=adapter_name,
                max_new_tokens=max_new_tokens,
                do_sample=sampling,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                seeded=seeded,
                stop_seqs=tuple(config.stop_seqs or ()),
                logprobs=bool(config.logprobs or config.top_logprobs),
                top_logprobs=config.top_logprobs or 0,
                hidden_states=self.hidden_states,
                hidden_layer=self.hidden_layer,
                hidden_layers=extra.hidden_layers,
                add_special_tokens=add_special,
                merge=self.merge_adapters,
                share_prefix=self.share_prefix,
                continuous=self._continuous(max_new_tokens),
            )
            payload = Prompt(prompt, adapter_name, _row_seed(config.seed, prompt) if seeded else None)
        result = await base.batcher.run(submit_key(base, key), payload, self.batch_size, group=adapter_name)
        return self._output(result)

    # --- internals -------------------------------------------------------------------------

    def _continuous(self, max_new_tokens: int) -> bool:
        if self.continuous is not None:
            return self.continuous
        return max_new_tokens >= CONTINUOUS_MIN_TOKENS

    def _ensure_loaded(self) -> Future[tuple[Any, str | None]]:
        """Start loading weights on a thread (once) and return the future of (base, adapter)."""
        with self._load_lock:
            if self._loaded is None:
                future: Future[tuple[Any, str | None]] = Future()
                self._loaded = future
                threading.Thread(target=self._load, args=(future,), name="misalign-load", daemon=True).start()
            return self._loaded

    def _load(self, future: Future[tuple[Any, str | None]]) -> None:
        try:
            # the whole load under the weights lock: its imports and from_pretrained must not run
            # beside training's on the main thread (a sweep trains while a provider made for a cached
            # eval may still be loading)
            with weights_lock(), heap_settling(self.gc_freeze):
                from inspect_misalign.models._engine import load_engine

                loaded = load_engine(
                    self.checkpoint,
                    device=self.device,
                    dtype=self.dtype,
                    threads=self.threads,
                    trust_remote_code=self.trust_remote_code,
                    attn_implementation=self.attn_implementation,
                    settle=self.settle,
                    lanes=self.lanes,
                    also=lambda: _announced_like(*self._announcement),
                )
            future.set_result(loaded)
        except BaseException as ex:  # noqa: BLE001 - every generate re-raises it
            future.set_exception(ex)
        finally:
            with _announced_lock:
                if self._announcement in _announced:
                    _announced.remove(self._announcement)

    def _output(self, result: Any) -> ModelOutput:
        logprobs = None
        if result.logprobs is not None:
            logprobs = Logprobs(
                content=[
                    Logprob(
                        token=entry["token"],
                        logprob=entry["logprob"],
                        bytes=list(entry["token"].encode("utf-8")),
                        top_logprobs=[
                            TopLogprob(
                                token=top["token"],
                                logprob=top["logprob"],
                                bytes=list(top["token"].encode("utf-8")),
                            )
                            for top in entry["top_logprobs"]
                        ]
                        if "top_logprobs" in entry
                        else None,
                    )
                    for entry in result.logprobs
                ]
            )
        choice = ChatCompletionChoice(
            message=ChatMessageAssistant(content=result.text, model=self.model_name, source="generate"),
            stop_reason=result.stop_reason,
            logprobs=logprobs,
        )
        return ModelOutput(
            model=self.model_name,
            choices=[choice],
            usage=ModelUsage(
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.input_tokens + result.output_tokens,
            ),
            time=result.time,
            metadata=_metadata(result),
        )


_frozen_lock = threading.Lock()
_frozen = False
_announced: list[tuple[ResolvedCheckpoint, str | None, str | None]] = []
"""(adapter checkpoint, device, dtype) of the providers whose weights are still loading."""
_announced_lock = threading.Lock()


def _announced_like(
    checkpoint: ResolvedCheckpoint, device: str | None, dtype: str | None
) -> list[ResolvedCheckpoint]:
    """Adapter checkpoints of the providers still loading on the same base, device and dtype."""
    with _announced_lock:
        return [
            other
            for other, other_device, other_dtype in _announced
            if other.base_dir == checkpoint.base_dir and (other_device, other_dtype) == (device, dtype)
        ]


def _freeze_once(gc_freeze: bool = True) -> None:
    """Freeze the heap before the first provider's background load (once per process; see
    :mod:`inspect_misalign.models._heap`): its imports and weights then start from a small heap."""
    global _frozen
    with _frozen_lock:
        if _frozen:
            return
        _frozen = True
    freeze_heap(gc_freeze)


def _register_model_info(model_name: str, checkpoint: ResolvedCheckpoint) -> None:
    """Register model info so Inspect's info lookups find it instead of constructing us again."""
    import json

    from inspect_ai.model import ModelInfo, set_model_info

    qualified = f"misalign/{model_name}"
    from inspect_ai.model._model_info import _get_custom_model_info

    if _get_custom_model_info(qualified) is not None:
        return
    try:
        config = json.loads((checkpoint.base_dir / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    context = config.get("max_position_embeddings")
    set_model_info(
        qualified,
        ModelInfo(
            organization="local",
            model=model_name,
            context_length=context if isinstance(context, int) else None,
        ),
    )


def _metadata(result: Any) -> dict[str, Any] | None:
    """The output metadata: ``hidden_states`` (``-M hidden_states``), ``hidden_states_by_layer``
    and ``continuations`` (``extra_body``), those that the request produced."""
    metadata = {
        "hidden_states": result.hidden_states,
        "hidden_states_by_layer": result.hidden_states_by_layer,
        "continuations": result.continuations,
    }
    return {key: value for key, value in metadata.items() if value is not None} or None


def _row_seed(seed: int, prompt: str) -> int:
    """The sampling seed of one request: from the config seed, the prompt and the active epoch."""
    from inspect_misalign.models._sampling import active_epoch, row_seed

    return row_seed(seed, prompt, active_epoch())


def _wants_sampling(config: GenerateConfig) -> bool:
    """Sample when the config asks: temperature > 0, or top_p/top_k with no temperature."""
    if config.temperature is not None:
        return config.temperature > 0
    return config.top_p is not None or config.top_k is not None


def _render_prompt(tokenizer: Any, messages: list[ChatMessage]) -> tuple[str, bool]:
    """(prompt text, whether the tokenizer should add special tokens) for a chat."""
    chat = []
    for message in messages:
        if message.role == "tool":
            raise NotImplementedError("the misalign/ provider does not support tool messages")
        chat.append({"role": message.role, "content": message.text})
    if getattr(tokenizer, "chat_template", None):
        continue_final = bool(chat) and chat[-1]["role"] == "assistant"
        prompt = tokenizer.apply_chat_template(
            chat,
            tokenize=False,
            add_generation_prompt=not continue_final,
            continue_final_message=continue_final,
        )
        return str(prompt), False
    text = "".join(f"{m['role']}: {m['content']}\n" for m in chat) + "assistant:"
    return text, True
