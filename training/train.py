"""Train one run: ``python -m training.train --config FILE.yaml [--key value ...]``.

Every TrainConfig field is a flag (``--scheme direct --speech_percent 5 --seed 2``); flags override the YAML file.
Add ``--resume`` to continue a killed run from its newest checkpoint. Multi-GPU: start it with accelerate, e.g.
``accelerate launch --config_file configs/accelerate/8gpu_fsdp.yaml -m training.train --config ...``.
``--help`` lists every option with its default.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Sequence

from data.cli import run_cli
from training.config import TrainConfig


def main(cfg: TrainConfig) -> int:
    from training.loop import run

    if cfg.scheme == "text" and (cfg.speech_percent or cfg.n_speech > 0):
        # text-only hears no speech: record 0 %, not the YAML's level (else the report grows an "N% Text" row)
        print(f"note: --scheme text uses no speech; recording speech_percent 0 (not {cfg.speech_percent:g})")
        cfg = dataclasses.replace(cfg, speech_percent=0.0, n_speech=-1)
    out = run(cfg)
    if out["stopped"]:
        print(f"stopped early at --stop_after_steps; continue with --resume: {out['run_dir']}")
    return 0


def cli(argv: Sequence[str] | None = None) -> int:
    from training.loop import TrainingError

    return run_cli(
        main,
        TrainConfig,
        (TrainingError, ValueError, OSError),
        argv=argv,
        prog="python -m training.train",
        description=__doc__,
    )


if __name__ == "__main__":
    sys.exit(cli())
