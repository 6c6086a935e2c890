"""Audio LLM adapters: everything model-specific that the rest of the project needs to know, in one record.

Training, decoding and the app never name Qwen2-Audio directly; they ask ``get_adapter(name)`` for

- which ``transformers`` class loads the checkpoint (plain classes, never ``trust_remote_code``),
- how a chat prompt is built with audio (the placeholder goes in the user turn) or with the transcript in its place,
- which token ends the assistant turn (it is part of the training target and stops generation),
- which submodules are "audio" (frozen in text-only phases) and which are the language model (LoRA goes there),
- keyword arguments the processor needs (the sampling rate).

The seed paper studies a single model (Qwen2-Audio-7B-Instruct); adding another audio LLM means adding one
``ModelAdapter`` to ``ADAPTERS`` and nothing else (see the README's models section).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

SAMPLE_RATE_HZ = 16_000


class LayoutError(ValueError):
    """A model whose submodules match none of its adapter's known layouts."""


class AdapterError(KeyError):
    """An adapter name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable on the command line
        return str(self.args[0]) if self.args else ""


Messages = list[dict[str, Any]]


def _qwen2_audio_messages(instruction: str, transcript: str | None, system: str) -> Messages:
    """One user turn: the audio clip (or the transcript standing in for it), then the instruction."""
    if transcript is None:
        content = [{"type": "audio", "audio": "<clip>"}, {"type": "text", "text": instruction}]
    else:
        content = [{"type": "text", "text": f"Transcript: {transcript}\n"}, {"type": "text", "text": instruction}]
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


# Renders messages the way Qwen2-Audio-7B-Instruct's own chat template does (ChatML turns; each audio item becomes
# "Audio k: <|audio_bos|><|AUDIO|><|audio_eos|>\n"). Used only when a processor ships without a template (the base,
# non-instruct checkpoint, or our tiny twin), so prompts are identical across the real and tiny models.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    # No whitespace control ("{%-"): it would also eat the literal newlines that ChatML needs.
    "{% set ns = namespace(n_audio=0) %}"
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'audio' %}{% set ns.n_audio = ns.n_audio + 1 %}"
    "Audio {{ ns.n_audio }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class ModelAdapter:
    """What the project needs to know about one family of audio LLMs."""

    name: str  # registry key, e.g. "qwen2-audio"
    hub_id: str  # default checkpoint on the Hugging Face hub
    model_class: str  # name of the transformers class that loads it (looked up in the transformers namespace)
    build_messages: Callable[[str, str | None, str], Messages]  # (instruction, transcript|None, system) -> messages
    chat_template: str  # fallback template when the processor ships none
    system_prompt: str = "You are a helpful assistant."
    audio_placeholder: str = "<|AUDIO|>"  # the token the processor expands into one token per audio frame
    end_of_turn: str = "<|im_end|>"  # closes the assistant turn: trained on, and stops generation
    # Submodules (dotted paths from the top-level model) fed only by audio: frozen in text-only phases.
    audio_modules: tuple[str, ...] = ()
    # Parameters the architecture keeps fixed in every phase (prefix match on parameter names).
    fixed_parameters: tuple[str, ...] = ()
    language_model_module: str = ""  # dotted path of the text decoder (LoRA targets live under it)
    lora_target_modules: tuple[str, ...] = ()  # leaf names of the linear layers LoRA adapts inside the decoder
    processor_kwargs: dict[str, Any] = field(default_factory=dict)  # passed with audio to the processor
    min_audio_seconds: float = 0.1  # shorter clips produce < 2 audio tokens and hit a legacy merge path
    dummy_audio_seconds: float = 0.5  # length of the silent clip that keeps the audio encoder in the graph
    # Other module layouts of the same architecture (e.g. older transformers releases): each a mapping of
    # audio_modules / fixed_parameters / language_model_module. ``for_model`` picks the one a model has.
    other_layouts: tuple[dict[str, Any], ...] = ()

    def messages(self, instruction: str, transcript: str | None) -> Messages:
        return self.build_messages(instruction, transcript, self.system_prompt)

    def lora_target_regex(self) -> str:
        """A peft ``target_modules`` regex that matches the adapted layers inside the language model only.

        The audio encoder has layers with the same leaf names (q_proj, k_proj, ...), so leaf names alone would
        adapt it too.
        """
        prefix = self.language_model_module.replace(".", r"\.")
        leaves = "|".join(self.lora_target_modules)
        return rf"(.*\.)?{prefix}\..*\.({leaves})"

    def layouts(self) -> list["ModelAdapter"]:
        """This adapter once per known module layout, the primary layout first."""
        return [self] + [replace(self, other_layouts=(), **layout) for layout in self.other_layouts]

    def for_model(self, model: Any) -> "ModelAdapter":
        """The adapter with the module paths ``model`` actually has (transformers 5.x or 4.x layout).

        Raises ``LayoutError`` naming the paths looked for when no known layout fits (a wrong adapter, or a
        transformers release whose layout is not registered).
        """
        names = set(dict(model.named_modules()))
        tried = []
        for layout in self.layouts():
            wanted = (*layout.audio_modules, layout.language_model_module)
            if all(m in names for m in wanted if m):
                return layout
            tried.append(", ".join(m for m in wanted if m))
        import transformers

        raise LayoutError(
            f"model {type(model).__name__} has none of the module layouts adapter {self.name!r} knows "
            f"(looked for: {' | '.join(tried)}; transformers {transformers.__version__}); is it the right adapter "
            "for this model? Supported transformers releases: see requirements.txt"
        )


QWEN2_AUDIO = ModelAdapter(
    name="qwen2-audio",
    hub_id="Qwen/Qwen2-Audio-7B-Instruct",
    model_class="Qwen2AudioForConditionalGeneration",
    build_messages=_qwen2_audio_messages,
    chat_template=QWEN2_AUDIO_CHAT_TEMPLATE,
    # transformers >= 5 module layout (checkpoints keep the hub's key names; from_pretrained maps them).
    audio_modules=("model.audio_tower", "model.multi_modal_projector"),
    # Whisper-style sinusoidal positions: the encoder itself sets requires_grad=False on them.
    fixed_parameters=("model.audio_tower.embed_positions",),
    language_model_module="model.language_model",
    # transformers 4.x: the three parts sit at the top level and the decoder is a causal LM (language_model.model).
    other_layouts=(
        {
            "audio_modules": ("audio_tower", "multi_modal_projector"),
            "fixed_parameters": ("audio_tower.embed_positions",),
            "language_model_module": "language_model",
        },
    ),
    lora_target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    processor_kwargs={"sampling_rate": SAMPLE_RATE_HZ},
)

ADAPTERS: dict[str, ModelAdapter] = {QWEN2_AUDIO.name: QWEN2_AUDIO}


# The transformers releases the project is tested on. The adapters also resolve the 4.x module layout (checked with
# 4.57.3), but the tiny test twin and the loading code use 5.x APIs, so 4.x is refused at start rather than half-run.
TRANSFORMERS_SUPPORTED = (5, 6)  # [major_min, major_max)


def check_transformers(version: str | None = None) -> str:
    """Return the installed transformers version, or raise AdapterError naming it and the supported range."""
    if version is None:
        import transformers

        version = transformers.__version__
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = -1
    low, high = TRANSFORMERS_SUPPORTED
    if not low <= major < high:
        raise AdapterError(
            f"transformers {version} is installed; this project supports {low}.x "
            f"(pip install 'transformers>={low},<{high}')"
        )
    return version


def get_adapter(name: str | ModelAdapter) -> ModelAdapter:
    """The adapter registered under ``name`` (an adapter passes through unchanged)."""
    if isinstance(name, ModelAdapter):
        return name
    try:
        return ADAPTERS[name]
    except KeyError:
        raise AdapterError(
            f"unknown model adapter {name!r}; registered: {', '.join(sorted(ADAPTERS))} "
            "(add one to models.registry.ADAPTERS to support another audio LLM)"
        ) from None


def get_submodule(model: Any, dotted: str) -> Any:
    """``model.get_submodule`` that also sees through a peft wrapper (``base_model.model``)."""
    try:
        return model.get_submodule(dotted)
    except AttributeError:
        inner = getattr(getattr(model, "base_model", None), "model", None)
        if inner is None:
            raise
        return inner.get_submodule(dotted)
