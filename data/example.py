"""The one normalised example type every loader produces and everything downstream consumes.

Speech and text are distinct items: SLURP has one text per ``slurp_id`` but several recordings of it, so a corpus is
a list of text items plus a list of speech items that point back to their text through ``text_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from data.frames import SLUFrame

Split = Literal["train", "dev", "test", "train_115"]


@dataclass(frozen=True)
class AudioRef:
    """Where an example's audio lives: a file path, or encoded bytes (e.g. a WAV inside a parquet row)."""

    path: str | None = None
    data: bytes | None = None
    duration_s: float | None = None  # when known without decoding

    def __post_init__(self) -> None:
        if self.path is None and self.data is None:
            raise ValueError("AudioRef needs a path or bytes")

    def __repr__(self) -> str:  # keep reprs of examples short when audio is inline bytes
        where = self.path if self.path is not None else f"<{len(self.data or b'')} bytes>"
        return f"AudioRef({where!r}, duration_s={self.duration_s})"


@dataclass(frozen=True)
class SLUExample:
    """One training or evaluation item.

    ``id`` is unique within a corpus and split. For speech items it is the recording name (SLURP's ``file``, the
    key the official scorer uses); for text items it is the text id (SLURP's ``slurp_id``). ``text_id`` ties a
    recording to its text, so nested speech subsets and cross-modal joins are possible.
    """

    id: str
    corpus: str
    language: str  # locale as the corpus names it, e.g. "en-US", "fr-FR", "it-IT"
    split: str
    transcript: str
    frame: SLUFrame
    audio: AudioRef | None = None
    text_id: str | None = None
    speaker: str | None = None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None

    def as_text(self) -> "SLUExample":
        """The same item without audio: the transcript stands in for the speech (text-only scheme, oracle eval)."""
        return replace(self, audio=None)
