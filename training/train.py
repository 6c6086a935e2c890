"""Train one run: ``python -m training.train --config FILE.yaml [--key value ...]``.

Every TrainConfig field is a flag (``--scheme direct --speech_percent 5 --seed 2``); flags override the YAML file.
Add ``--resume`` to continue a killed run from its newest checkpoint. Multi-GPU: start it with accelerate, e.g.
``accelerate launch --config_file configs/accelerate/8gpu_fsdp.yaml -m training.train --config ...``.
"""

from __future__ import annotations

import sys

from training.config import ConfigError, TrainConfig, parse_config


def main(cfg: TrainConfig) -> dict:
    from training.loop import run

    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        for key, value in TrainConfig().to_dict().items():
            print(f"  --{key} (default: {value!r})")
        return 0
    from training.loop import TrainingError

    try:
        cfg = parse_config(argv)
        if cfg.scheme == "text" and (cfg.speech_percent or cfg.n_speech > 0):
            # text-only hears no speech: record 0 %, not the YAML's level (else the report grows an "N% Text" row)
            import dataclasses

            print(f"note: --scheme text uses no speech; recording speech_percent 0 (not {cfg.speech_percent:g})")
            cfg = dataclasses.replace(cfg, speech_percent=0.0, n_speech=-1)
        out = main(cfg)
    except (ConfigError, TrainingError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if out["stopped"]:
        print(f"stopped early at --stop_after_steps; continue with --resume: {out['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
