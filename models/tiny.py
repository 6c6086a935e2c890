"""A tiny, randomly initialised Qwen2-Audio twin for tests and CPU experiments, built entirely offline.

Same classes as the real model: ``Qwen2AudioForConditionalGeneration``, the real ``Qwen2Tokenizer`` (over a small
byte-level BPE trained here on an embedded text), ``WhisperFeatureExtractor`` with 128 mel bins, and
``Qwen2AudioProcessor`` with the Qwen2-Audio chat template. It is saved with ``save_pretrained`` and read back by
``models.loading.load_model``, so a test of the twin exercises the path the real checkpoint takes.
About 0.5M parameters; building and saving it takes well under a second after imports.

Run:  python -m models.tiny --out DIR [--seed 0]
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from models.registry import QWEN2_AUDIO_CHAT_TEMPLATE, QWEN2_AUDIO

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>")
VOCAB_SIZE = 1024
# Qwen2's pre-tokenizer split (contractions, letter runs, single digits, punctuation runs, newlines, spaces).
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# SLURP's label inventory (18 scenarios, 46 actions, entity types; from the public SLURP annotations, CC BY 4.0),
# so frequent target words become single tokens and short training runs converge fast.
_SCENARIOS = (
    "alarm audio calendar cooking datetime email general iot lists music news play qa recommendation social "
    "takeaway transport weather"
)
_ACTIONS = (
    "addcontact audiobook cleaning coffee convert createoradd currency definition dislikeness events factoid game "
    "greet hue_lightchange hue_lightdim hue_lightoff hue_lighton hue_lightup joke likeness locations maths movies "
    "music order podcasts post query querycontact quirky radio recipe remove sendemail set settings stock taxi "
    "ticket traffic volume_down volume_mute volume_up wemo_off wemo_on"
)
_ENTITY_TYPES = (
    "alarm_type app_name artist_name audiobook_author audiobook_name business_name business_type change_amount "
    "coffee_type color_type cooking_type currency_name date definition_word device_type drink_type email_address "
    "email_folder event_name food_type game_name game_type general_frequency house_place ingredient joke_type "
    "list_name meal_type media_type movie_name movie_type music_descriptor music_genre news_topic order_type person "
    "personal_info place_name player_setting playlist_name podcast_descriptor podcast_name radio_name relation "
    "song_name sport_type time time_zone timeofday transport_agency transport_descriptor transport_name "
    "transport_type weather_descriptor"
)
# A little everyday text in the project's languages (own sentences), so non-ASCII scripts get merges too.
_MULTILINGUAL = (
    "wake me up at five am this week. what is the weather like in paris tomorrow? play some jazz music please. "
    "set an alarm for seven thirty. turn off the lights in the kitchen. remind me about the meeting with anna. "
    "réveille-moi à cinq heures demain matin. quel temps fera-t-il à lyon ? joue de la musique française. "
    "weck mich morgen um sechs uhr. wie wird das wetter in berlin? spiel etwas musik. "
    "svegliami alle sette domani. che tempo fa a roma? metti della musica. "
    "despiértame a las seis mañana. ¿qué tiempo hace en madrid? pon música. "
    "acorda-me às seis amanhã. como está o tempo em lisboa? "
    "내일 아침 다섯 시에 깨워 줘. 오늘 날씨 어때? 음악 틀어 줘. "
    "đánh thức tôi lúc năm giờ sáng mai. thời tiết hôm nay thế nào? "
    "разбуди меня в шесть утра. какая погода в москве? "
    "أيقظني في الساعة السادسة صباحا. كيف الطقس اليوم؟ "
    "beni yarın sabah altıda uyandır. bugün hava nasıl? "
    "ébressz fel holnap hatkor. milyen idő lesz? obudź mnie jutro o szóstej. maak me morgen om zes uur wakker. "
)


def _corpus() -> list[str]:
    """Training text for the tiny BPE: chat scaffolding, JSON targets built from the label inventory, prose."""
    from models.prompt import INSTRUCTION

    scenarios, actions, types = _SCENARIOS.split(), _ACTIONS.split(), _ENTITY_TYPES.split()
    lines = [
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n",
        "Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n" + INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n",
        "Transcript: " + _MULTILINGUAL,
    ]
    for i, etype in enumerate(types):
        frame = {
            "scenario": scenarios[i % len(scenarios)],
            "action": actions[i % len(actions)],
            "entities": [{"type": etype, "filler": "five am"}, {"type": types[(i * 7) % len(types)], "filler": "x"}],
        }
        lines.append(json.dumps(frame, ensure_ascii=False))
    for i, action in enumerate(actions):
        lines.append(json.dumps({"scenario": scenarios[i % len(scenarios)], "action": action, "entities": []}))
    # Repeat so that the JSON punctuation and the label words win merges over rare prose pairs.
    return lines * 4 + [_MULTILINGUAL] * 2


def build_tokenizer(texts: list[str] | None = None, vocab_size: int = VOCAB_SIZE):
    """A real ``Qwen2Tokenizer`` over a small byte-level BPE trained on ``texts`` (default: the embedded text);
    deterministic for the same texts."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus() if texts is None else texts, trainer)
    state = json.loads(bpe.to_str())["model"]
    # Qwen2Tokenizer wants merges as (left, right) tuples; the tokenizers JSON may hold lists or "a b" strings.
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in state["merges"]]
    return Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )


def build_processor(tokenizer=None):
    """Tokenizer (default: the embedded BPE) + 128-bin Whisper features + the Qwen2-Audio chat template, in the
    real processor class."""
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor

    features = WhisperFeatureExtractor(feature_size=128)  # Qwen2-Audio uses 128 mel bins; the default is 80
    return Qwen2AudioProcessor(
        feature_extractor=features, tokenizer=tokenizer or build_tokenizer(), chat_template=QWEN2_AUDIO_CHAT_TEMPLATE
    )


@dataclass(frozen=True)
class TinySize:
    """Dimensions of the twin (the real model: 1280-d encoder, 32 layers; 4096-d decoder, 32 layers)."""

    audio_dim: int = 64
    audio_layers: int = 2
    text_dim: int = 64
    text_layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    ffn_dim: int = 256


def build_tiny(seed: int = 0, size: TinySize = TinySize(), processor=None):
    """A randomly initialised tiny Qwen2-Audio and its processor: ``(model, processor)``, float32 on CPU.
    ``size`` and ``processor`` (e.g. a tokenizer trained on a corpus) default to the test twin's."""
    import torch
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2Config,
    )

    processor = processor or build_processor()
    tok = processor.tokenizer
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(
            num_mel_bins=128,
            d_model=size.audio_dim,
            encoder_layers=size.audio_layers,
            encoder_attention_heads=size.heads,
            encoder_ffn_dim=size.ffn_dim,
            max_source_positions=1500,  # fixed by the 30 s input window: 3000 mel frames / 2
        ),
        text_config=Qwen2Config(
            hidden_size=size.text_dim,
            intermediate_size=size.ffn_dim,
            num_hidden_layers=size.text_layers,
            num_attention_heads=size.heads,
            num_key_value_heads=size.kv_heads,
            vocab_size=len(tok),
            max_position_embeddings=4096,
            eos_token_id=tok.convert_tokens_to_ids(QWEN2_AUDIO.end_of_turn),
            pad_token_id=tok.pad_token_id,
        ),
        # The default (151646) is the real vocabulary's id; ours is tiny.
        audio_token_index=tok.convert_tokens_to_ids(QWEN2_AUDIO.audio_placeholder),
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = Qwen2AudioForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(generator_state)  # do not disturb the caller's random stream
    _set_sinusoidal_positions(model)
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, processor


def sinusoidal_positions(length: int, channels: int, max_timescale: float = 10_000.0):
    """Whisper's fixed position table: sines then cosines over geometrically spaced timescales."""
    import math

    import torch

    half = channels // 2
    step = math.log(max_timescale) / max(half - 1, 1)
    inv = torch.exp(-step * torch.arange(half, dtype=torch.float32))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _set_sinusoidal_positions(model) -> None:
    """The encoder's positions are frozen (never trained), so a model built from random weights must get Whisper's
    sinusoidal table, as the real checkpoint has: the library's random initialisation (std 0.02) leaves the encoder
    with almost no notion of order, and a model trained from scratch then cannot learn to align audio and text."""
    import torch

    inner = getattr(model, "model", model)
    tower = getattr(inner, "audio_tower", None) or model.audio_tower
    table = tower.embed_positions.weight
    with torch.no_grad():
        table.copy_(sinusoidal_positions(table.shape[0], table.shape[1]).to(table.dtype))


def save_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the twin and save it as a checkpoint folder that ``load_model(out_dir)`` reads."""
    from models.loading import save_model

    model, processor = build_tiny(seed=seed)
    return save_model(model, processor, out_dir)


@dataclass
class TinyConfig:
    out: str = field(default="", metadata={"help": "folder to write the tiny checkpoint to", "required": True})
    seed: int = field(default=0, metadata={"help": "seed of the random initialisation"})


def main(argv: list[str] | None = None) -> int:
    from data.cli import run_cli

    def write(args: TinyConfig) -> None:
        try:
            print(save_tiny(args.out, seed=args.seed))
        except OSError as err:
            raise OSError(f"cannot write the tiny checkpoint to {args.out}: {err}") from None

    return run_cli(
        write, TinyConfig, OSError, argv=argv, prog="python -m models.tiny", description=__doc__.splitlines()[0]
    )


if __name__ == "__main__":
    sys.exit(main())
