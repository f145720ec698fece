"""How every retu config is read: YAML files, `a.b=value` overrides, and plain data checked into nested
frozen dataclasses (run configs in `retu.config`; pipeline and compare configs with `read_top_level`).

Errors are one-line RetuInputErrors naming the file, line or key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from retu.errors import RetuInputError, read_text


def _coerce(value, hint, key: str, src: str):
    """Check (and gently convert) a YAML/CLI value against a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if hint is int and isinstance(value, float) and value.is_integer():
        return int(value)
    expected = origin or hint
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise RetuInputError(f"{src}: '{key}' must be {expected.__name__}, got {value!r}")
    return value


def build_dataclass(cls, raw: dict, prefix: str, src: str):
    """`cls` (a frozen dataclass, sections nested) from plain data; an unknown key lists the valid ones.

    Args:
        cls: The dataclass; a field whose type hint is a dataclass is built from a nested mapping.
        raw: Its keys and values (YAML data).
        prefix: Dotted path of `cls` in the whole config ("" at the top, "optim." for a section).
        src: Where the data came from (a file name, or "defaults"), the start of every error.

    Raises:
        RetuInputError: An unknown key, a value of the wrong type, or what `cls.__post_init__` refuses.
    """
    if not isinstance(raw, dict):
        raise RetuInputError(f"{src}: '{prefix.rstrip('.') or 'config'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise RetuInputError(f"{src}: unknown key '{prefix}{unknown[0]}'; valid keys: {', '.join(prefix + n for n in names)}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build_dataclass(hint, value or {}, f"{prefix}{name}.", src)
        else:
            kwargs[name] = _coerce(value, hint, prefix + name, src)
    return cls(**kwargs)


def set_path(raw: dict, dotted: str, value) -> None:
    """Set `raw[a][b] = value` for `dotted` "a.b", creating sections on the way."""
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise RetuInputError(f"override '{dotted}': '{p}' is not a section")
    node[parts[-1]] = value


def read_yaml(path: Path):
    """A YAML file's data ({} when empty); bad YAML raises one line naming the file and line.

    Raises:
        RetuInputError: the file is not UTF-8 or not valid YAML (tags such as !!python/object included).
    """
    text = read_text(path)
    try:
        return yaml.safe_load(text) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RetuInputError(f"{path}{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow, found before parsing
        line = text[:exc.position].count("\n") + 1
        raise RetuInputError(f"{path}:{line}: not valid YAML (control character {exc.character!r} at byte "
                             f"{exc.position})") from None
    except yaml.YAMLError as exc:
        raise RetuInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def _parse_value(text: str, item: str):
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        raise RetuInputError(f"override '{item}': the value is not valid YAML (quote it)") from None


def parse_overrides(overrides: list[str]) -> list[tuple[str, object]]:
    """`a.b=value` strings -> (key, YAML-parsed value); a malformed one names itself."""
    out = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise RetuInputError(f"override '{item}' must look like key=value (e.g. optim.lr=1e-4)")
        out.append((key.strip(), _parse_value(text, item)))
    return out


def read_config_file(path: str | Path | None, what: str) -> dict:
    """The mapping a config file holds ({} for no file); a missing file or a non-mapping names the file.

    Raises:
        RetuInputError: `<path>: <what> config file not found`, or `<path>: a <what> config must be a mapping of keys`.
    """
    if path is None:
        return {}
    p = Path(path)
    if not p.exists():
        raise RetuInputError(f"{p}: {what} config file not found")
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        raise RetuInputError(f"{p}: a {what} config must be a mapping of keys")
    return raw


def read_top_level(cls, path: str | Path | None, overrides: list[str], *, what: str) -> dict:
    """Keyword arguments of an orchestration dataclass (pipeline, compare) from YAML and key=value overrides.

    Unknown keys name the file and list the valid ones; list values of tuple fields become tuples.
    The caller checks and builds `cls(**raw)`.
    """
    raw = read_config_file(path, what)
    raw.update(parse_overrides(list(overrides)))
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise RetuInputError(f"{path or what}: unknown key '{unknown[0]}'; valid keys: {', '.join(valid)}")
    for f in dataclasses.fields(cls):
        if f.name in raw and isinstance(f.default, tuple) and isinstance(raw[f.name], list | type(None)):
            raw[f.name] = tuple(raw[f.name] or ())
    return raw
