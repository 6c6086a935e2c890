"""The one command-line and config helper of every entry point: a dataclass is the CLI.

Each field of a config dataclass is a flag, written ``--field-name`` or ``--field_name`` (both work), with
``--field value`` or ``--field=value``. Defaults and help live only on the dataclass: a field's ``metadata`` may give
``help``, ``choices``, ``positional`` (filled from bare arguments, in field order), ``required`` (must be given),
``repeat`` (a list field whose flag may be given several times) and ``env`` (an environment variable read when the
flag is not given). Nested dataclasses are reached with dots,
``--schedule.peak_lr 3e-6``; dict fields take dotted keys, ``--corpus_args.path data/x``; list fields take comma
lists, ``--eval_splits dev,test``; booleans are bare ``--resume``, ``--resume false`` or ``--no-resume``.

A dataclass may declare ``ALIASES: ClassVar[dict[str, str]]``, old or short names mapped onto a dotted field path
(``{"peak_lr": "schedule.peak_lr"}``): they work as flags, YAML keys and keys of recorded config files, so configs
written before a field moved keep working.

Precedence: dataclass defaults < ``--config FILE.yaml`` (every entry point whose dataclass has no ``config`` field
of its own) < environment variables named in ``env`` < flags. Every problem (an unknown option, a value of the
wrong type or outside ``choices``, a missing file, a missing required option) is a ``ConfigError`` whose message
names the option and the fix; ``run_cli`` prints it as one ``error: ...`` line and returns exit status 2.

    @dataclass
    class Cfg:
        results: str = field(default="", metadata={"help": "results CSV", "positional": True, "required": True})
        out: str = field(default="", metadata={"help": "file to write"})

    sys.exit(run_cli(main, Cfg, (MyError,), description="..."))

Torch-free and importing nothing of ours (``data`` is the bottom layer), so every CLI starts fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import yaml

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """An option, config file or value that cannot be used; the message names it and the fix."""


# ------------------------------------------------------------------------------------------------------------------
# The fields of a (nested) config dataclass


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X`` (the first member that is not None)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        return members[0] if members else tp
    return tp


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: _unwrap(hints[f.name]) for f in dataclasses.fields(cls)}


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def aliases(cls: type) -> dict[str, str]:
    """Every alias a config class accepts, its nested classes' ones included (prefixed with their path)."""
    found = dict(getattr(cls, "ALIASES", {}) or {})
    hints = _hints(cls)
    for name in _fields(cls):
        if _is_config(hints[name]):
            found.update({f"{name}.{a}": f"{name}.{p}" for a, p in aliases(hints[name]).items()})
    return found


def resolve(alias: Mapping[str, str], key: str) -> str:
    """``key`` with an aliased name or leading part replaced: ``corpus_args.path`` -> ``data.corpus_args.path``."""
    if key in alias:
        return alias[key]
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:i])
        if head in alias:
            return alias[head] + "." + ".".join(parts[i:])
    return key


def option_names(cls: type, prefix: str = "") -> list[str]:
    """The dotted names of every leaf option, nested classes expanded (``schedule.peak_lr``)."""
    names: list[str] = []
    hints = _hints(cls)
    for name in _fields(cls):
        if _is_config(hints[name]):
            names += option_names(hints[name], f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def option_values(cfg: Any) -> dict[str, Any]:
    """A config instance as ``{dotted option: value}``, nested classes expanded (dict fields stay whole)."""
    out: dict[str, Any] = {}
    for name in _fields(type(cfg)):
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update({f"{name}.{k}": v for k, v in option_values(value).items()})
        else:
            out[name] = value
    return out


def _leaf(cls: type, path: str) -> tuple[dataclasses.Field, Any, str] | None:
    """The field at a dotted path, its type and what is left of the path (a dict field's sub-key), or None."""
    head, _, rest = path.partition(".")
    fields_, hints = _fields(cls), _hints(cls)
    if head not in fields_:
        return None
    if _is_config(hints[head]):
        return _leaf(hints[head], rest) if rest else None
    if rest and not (hints[head] is dict or typing.get_origin(hints[head]) is dict):
        return None  # --seed.x: only dict fields have sub-keys
    return fields_[head], hints[head], rest


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


# ------------------------------------------------------------------------------------------------------------------
# Values


def _flag(name: str) -> str:
    return "--" + name


def convert(name: str, tp: Any, value: Any, choices: Sequence[Any] | None = None) -> Any:
    """Coerce a YAML value or a flag string to the field's type, or raise ConfigError naming the option."""
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    try:
        if value is None and tp is not str:
            out = None
        elif tp is bool:
            if isinstance(value, bool):
                out = value
            elif str(value).strip().lower() in _TRUE:
                out = True
            elif str(value).strip().lower() in _FALSE:
                out = False
            else:
                raise ValueError("expected true or false")
        elif tp in (list, tuple) or origin in (list, tuple):
            items = list(value) if isinstance(value, (list, tuple)) else [v.strip() for v in str(value).split(",")]
            args = typing.get_args(tp)
            item_tp = args[0] if args else None
            items = [item_tp(v) if item_tp in (int, float, str) else v for v in items if v != ""]
            out = tuple(items) if (tp is tuple or origin is tuple) else items
        elif tp is dict or origin is dict:
            out = value if isinstance(value, dict) else yaml.safe_load(str(value))  # '{path: x}' or JSON
            if not isinstance(out, dict):
                raise ValueError("expected a mapping such as '{path: data/x}'")
            out = dict(out)
        elif tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and value != int(value)):
                raise ValueError("expected an integer")
            out = int(value)
        elif tp is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            out = float(value)
        elif tp is str:
            out = "" if value is None else str(value)
        else:
            out = value
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{_flag(name)}: cannot use {value!r}: {exc}") from None
    if choices and out not in choices:
        raise ConfigError(f"{_flag(name)}: {out!r} is not one of {', '.join(map(str, choices))}")
    return out


def _set(tree: dict, path: str, value: Any) -> None:
    """Put ``value`` at a dotted path of a nested dict; a mapping merges into what is there."""
    *parents, last = path.split(".")
    for p in parents:
        node = tree.get(p)
        if not isinstance(node, dict):
            node = tree[p] = {}
        tree = node
    if isinstance(value, dict) and isinstance(tree.get(last), dict):
        tree[last] = {**tree[last], **value}
    else:
        tree[last] = value


def _flatten(cls: type, values: Mapping[str, Any], prefix: str = "", root: type | None = None) -> dict[str, Any]:
    """A mapping (YAML, config.json, flags) as ``{dotted path: value}``; aliases resolved, unknown keys refused."""
    root = root or cls
    alias = aliases(cls)
    flat: dict[str, Any] = {}
    hints = _hints(cls)
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if resolve(alias, key) != key:  # an older or short name: put the value where the field lives now
            for path, val in _flatten(cls, _nest({resolve(alias, key): value}), prefix, root).items():
                _merge(flat, path, val)
            continue
        head, dot, rest = key.partition(".")
        full = prefix + key
        if head not in _fields(cls):
            raise ConfigError(_unknown(full, root))
        tp = hints[head]
        if _is_config(tp):
            if dot or isinstance(value, Mapping):
                for path, val in _flatten(tp, {rest: value} if dot else value, prefix + head + ".", root).items():
                    _merge(flat, path, val)
            else:
                raise ConfigError(
                    f"{_flag(full)} is a group of options, not a value; set its parts, e.g. "
                    f"{_flag(option_names(tp, prefix + head + '.')[0])}"
                )
        elif dot:
            if not (tp is dict or typing.get_origin(tp) is dict):
                raise ConfigError(_unknown(full, root))
            sub: dict[str, Any] = {}
            _set(sub, rest, value)
            _merge(flat, prefix + head, sub)
        else:
            _merge(flat, full, value)
    return flat


def _merge(flat: dict[str, Any], path: str, value: Any) -> None:
    """Set one option; a mapping given twice (YAML then dotted flags) is merged, the later keys winning."""
    if isinstance(value, dict) and isinstance(flat.get(path), dict):
        flat[path] = {**flat[path], **value}
    else:
        flat[path] = value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        _set(tree, path, value)
    return tree


def _unknown(name: str, cls: type) -> str:
    known = option_names(cls)
    # Compare with full names, their last parts and the older names: --num_beam -> --decoding.num_beams.
    spelled = {k: k for k in known} | {k.rsplit(".", 1)[-1]: k for k in known} | aliases(cls)
    close = list(dict.fromkeys(spelled[c] for c in difflib.get_close_matches(name, list(spelled), n=3, cutoff=0.75)))
    if not close:  # a group: --schedule -> --schedule.peak_lr, ...
        close = [k for k in known if k.startswith(name + ".")][:3]
    hint = f" (did you mean {', '.join(_flag(c) for c in close)}?)" if close else ""
    return f"unknown option {_flag(name)}{hint}; known options: {', '.join(known)}"


def _build(cls: type[T], flat: Mapping[str, Any], prefix: str = "", older: Mapping[str, str] | None = None) -> T:
    if older is None:  # option -> its older flat name, so an error names the flag the user may have written
        older = {}
        for alias, path in aliases(cls).items():
            older.setdefault(path, alias)
    kwargs: dict[str, Any] = {}
    hints = _hints(cls)
    for name, f in _fields(cls).items():
        path = prefix + name
        tp = hints[name]
        if _is_config(tp):
            if any(k.startswith(path + ".") for k in flat):
                kwargs[name] = _build(tp, flat, path + ".", older)
        elif path in flat:
            label = f"{path} (--{older[path]})" if path in older else path
            kwargs[name] = convert(label, tp, flat[path], f.metadata.get("choices"))
        elif f.metadata.get("required"):
            raise ConfigError(f"{_flag(path)} is required: {f.metadata.get('help', 'give a value')}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except TypeError as exc:  # a field without a default that was not given
        raise ConfigError(f"{cls.__name__}: {exc}") from None
    except ValueError as exc:  # the dataclass's own check (__post_init__) refused a value
        if prefix:
            raise ConfigError(str(exc)) from None
        raise


def from_mapping(cls: type[T], values: Mapping[str, Any]) -> T:
    """Build ``cls`` from a plain mapping (YAML, a recorded config.json): nested or dotted keys, aliases accepted;
    unknown keys are errors, never ignored."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"a {cls.__name__} must be a mapping of option: value, got {type(values).__name__}")
    return _build(cls, _flatten(cls, values))


def load_yaml(path: str | Path, what: str = "--config") -> dict[str, Any]:
    """A YAML file holding a mapping, or ConfigError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: {path} does not exist; pass the path of a YAML file (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{what}: {path} is not readable YAML ({' '.join(str(exc).split())[:160]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} must hold a mapping of option: value")
    return data


# ------------------------------------------------------------------------------------------------------------------
# Flags


def split_flags(
    cls: type, argv: Sequence[str], *, known_only: bool = False
) -> tuple[dict[str, Any], list[str], list[str]]:
    """``argv`` as ({dotted option: raw value}, positional values, rest).

    ``known_only``: options ``cls`` does not know go to ``rest`` (with their value) instead of raising, so an
    entry point can hand them to another config (the sweep passes them to every run's TrainConfig).
    """
    alias = aliases(cls)
    values: dict[str, Any] = {}
    bare: list[str] = []
    rest: list[str] = []
    argv = list(argv)
    i = 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--") or tok == "--":
            if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
                raise ConfigError(f"unknown option {tok}; options are written --name value (see --help)")
            bare.append(tok)
            i += 1
            continue
        key, eq, val = tok[2:].partition("=")
        key = key.replace("-", "_")
        path = resolve(alias, key)
        found = _leaf(cls, path)
        negated = False
        if found is None and key.startswith("no_"):  # --no-resume
            neg = _leaf(cls, resolve(alias, key[3:]))
            if neg is not None and _unwrap(neg[1]) is bool and not eq:
                found, path, negated = neg, resolve(alias, key[3:]), True
        if found is None and "." not in path and path == "config" and "config" not in _fields(cls):
            found = (None, str, "")  # --config FILE.yaml
        if found is None:
            if known_only:
                rest.append(tok)
                if not eq and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    rest.append(argv[i + 1])
                    i += 1
                i += 1
                continue
            raise ConfigError(_unknown(key, cls))
        if negated:
            val = "false"
        elif not eq:
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            if _unwrap(found[1]) is bool:
                if nxt is not None and nxt.strip().lower() in _TRUE + _FALSE:
                    val, i = nxt, i + 1
                else:
                    val = "true"  # a bare boolean flag: --resume
            elif nxt is None or (nxt.startswith("--") and nxt != "--"):
                raise ConfigError(f"--{key} needs a value")
            else:
                val, i = nxt, i + 1
        if found[2]:  # --corpus_args.path data/x: a dict field's sub-key, its value typed as YAML reads it
            try:
                val = yaml.safe_load(val)
            except yaml.YAMLError:
                pass  # kept as the string it is
        if found[0] is not None and found[0].metadata.get("repeat"):  # --sbatch A=1 --sbatch B=2
            values[path] = [*values.get(path, []), val]
        else:
            values[path] = val
        i += 1
    return values, bare, rest


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def help_text(cls: type, prog: str = "", description: str = "") -> str:
    lines = [f"usage: {prog or 'python -m ...'} [--config FILE.yaml] [--option value ...]"]
    if description:
        lines += ["", description.strip()]
    lines += ["", "options (--a-b and --a_b are the same flag; nested options are dotted):"]

    def walk(c: type, prefix: str) -> None:
        hints = _hints(c)
        for name, f in _fields(c).items():
            if _is_config(hints[name]):
                walk(hints[name], f"{prefix}{name}.")
                continue
            meta = f.metadata
            label = (prefix + name) if meta.get("positional") else _flag(prefix + name)
            extra = [f"default: {_default(f)!r}"] if not meta.get("required") else ["required"]
            if meta.get("choices"):
                extra.append("one of " + ", ".join(map(str, meta["choices"])))
            if meta.get("env"):
                extra.append(f"env {meta['env']}")
            lines.append(f"  {label:<28} {meta.get('help', '')} ({'; '.join(extra)})")

    walk(cls, "")
    named = aliases(cls)
    if named:
        lines += ["", "also accepted (older names): " + ", ".join(f"--{a} = --{p}" for a, p in sorted(named.items()))]
    return "\n".join(lines)


def _env_values(cls: type, environ: Mapping[str, str], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    hints = _hints(cls)
    for name, f in _fields(cls).items():
        if _is_config(hints[name]):
            out.update(_env_values(hints[name], environ, f"{prefix}{name}."))
        elif f.metadata.get("env") and environ.get(f.metadata["env"], "") != "":
            out[prefix + name] = environ[f.metadata["env"]]
    return out


def parse_config(
    cls: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str = "",
    description: str = "",
    environ: Mapping[str, str] | None = None,
    known_only: bool = False,
) -> Any:
    """Defaults < ``--config FILE.yaml`` < environment (fields with ``env``) < flags; returns the dataclass.

    With ``known_only`` it returns ``(config, rest)``: the flags ``cls`` does not know, untouched. ``-h``/``--help``
    prints every option with its default and help, then exits 0.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "-h" in argv or "--help" in argv:
        try:
            print(help_text(cls, prog, description))
        except BrokenPipeError:  # --help | head
            pass
        raise SystemExit(0)
    flags, bare, rest = split_flags(cls, argv, known_only=known_only)
    values: dict[str, Any] = {}
    config_file = flags.pop("config", None) if "config" not in _fields(cls) else None
    if config_file is not None:
        values.update(_flatten(cls, load_yaml(config_file)))
    values.update(_env_values(cls, os.environ if environ is None else environ))
    positional = [n for n, f in _fields(cls).items() if f.metadata.get("positional")]
    if len(bare) > len(positional):
        extra = bare[len(positional) :]
        raise ConfigError(
            f"unexpected argument(s) {' '.join(extra)}; options are written --name value"
            + (f" (positional: {', '.join(positional)})" if positional else "")
        )
    flags.update(dict(zip(positional, bare)))
    for key, raw in flags.items():
        for path, val in _flatten(cls, {key: raw}).items():
            _merge(values, path, val)  # dotted flags refine the YAML mapping
    cfg = _build(cls, values)
    return (cfg, rest) if known_only else cfg


def to_flags(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The inverse of parsing, for handing options on to another process: ``{"a": {"b": 1}}`` -> ``--a.b 1``."""
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            out += to_flags(value, f"{prefix}{key}.")
        elif isinstance(value, (list, tuple)):
            out += [f"--{prefix}{key}", ",".join(map(str, value))]
        else:
            out += [f"--{prefix}{key}", value if isinstance(value, str) else str(value)]
    return out


def run_cli(
    main: Callable[[Any], Any],
    cls: type,
    errors: tuple[type[BaseException], ...] | type = (),
    *,
    argv: Sequence[str] | None = None,
    prog: str = "",
    description: str = "",
    environ: Mapping[str, str] | None = None,
) -> int:
    """Parse ``argv`` into ``cls``, run ``main(cfg)``; a ConfigError or one of ``errors`` becomes one ``error: ...``
    line on stderr and exit status 2. Returns ``main``'s result when it is an int (an exit status), else 0."""
    errors = errors if isinstance(errors, tuple) else (errors,)
    try:
        cfg = parse_config(cls, argv, prog=prog, description=description, environ=environ)
        result = main(cfg)
    except (ConfigError, *errors) as exc:
        print(f"error: {' '.join(str(exc).split()) if chr(10) in str(exc) else exc}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
