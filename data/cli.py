"""Map a config dataclass onto command-line flags (one source of defaults), for the data CLIs.

Each field becomes ``--field-name``; its type (str, int, float, bool, or ``X | None``) drives parsing and the
field's ``metadata["help"]`` is the help text. Kept dependency-free so data CLIs start fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")


def _base_type(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def parse_config(cls: type[T], argv: Sequence[str] | None = None, *, description: str = "",
                 positional: Sequence[str] = ()) -> T:
    hints = typing.get_type_hints(cls)
    parser = argparse.ArgumentParser(description=description)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        if f.name in positional:
            parser.add_argument(f.name, type=tp, help=help_text)
        elif tp is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", action=argparse.BooleanOptionalAction,
                                default=default, help=help_text)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=tp, default=default,
                                help=f"{help_text} (default: {default})")
    return cls(**vars(parser.parse_args(argv)))


def run_cli(main: Callable[[Any], Any], cls: type, errors: tuple[type[BaseException], ...], *,
            description: str = "", positional: Sequence[str] = ()) -> None:
    """Parse flags, run ``main(cfg)``; our errors become one line on stderr and exit status 2."""
    try:
        cfg = parse_config(cls, None, description=description, positional=positional)
        main(cfg)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
