"""Reading YAML files into checked values, with every error naming file, line and key path.

`load_document` parses with `yaml.SafeLoader` (libyaml's `CSafeLoader` where there is one), keeping the line of every
key and list item and refusing duplicate keys (YAML would silently keep the last one). `Section` then reads typed
fields out of one mapping: each read checks type and range, and `finish()` reports keys nobody asked for, so a typo
such as `max_presure_mmhg` is an error rather than a silent default. Problems are collected, not raised one at a
time, so a user sees every mistake in a file at once; the caller raises `ConfigError` when `Problems` is not empty.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from legsleeve.errors import ConfigError

REQUIRED = object()


class YMap(dict):
    """A mapping that remembers the line of each key (1-based)."""

    line: int = 0
    key_lines: dict


class YList(list):
    """A list that remembers the line of each item (1-based)."""

    line: int = 0
    item_lines: list


# libyaml's parser where PyYAML was built with it (PyPI's wheels are, aarch64 too), else PyYAML's own: the same
# resolver and constructors on either, so the same values and lines; libyaml parses hardware.yaml in 0.6 ms, PyYAML's
# own in 5.8 (and a test session loads config thousands of times).
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_Base):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> YMap:
    loader.flatten_mapping(node)
    out = YMap()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(None, None, "keys must be plain words", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {out.key_lines[key]})", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_list(loader: _LineLoader, node: yaml.SequenceNode) -> YList:
    out = YList(loader.construct_object(item, deep=True) for item in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [item.start_mark.line + 1 for item in node.value]
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)


def load_document(path: Path) -> YMap:
    """Parse one YAML file whose top level must be a non-empty mapping. Raises ConfigError otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([f"{path}:{line}: YAML syntax: {exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: YAML syntax: {exc}"]) from None
    if data is None:
        raise ConfigError([f"{path}:1: file is empty"])
    if not isinstance(data, YMap):
        raise ConfigError([f"{path}:1: top level must be a mapping of keys, got {_kind(data)}"])
    if not data:
        raise ConfigError([f"{path}:1: file has no keys"])
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, (YMap, dict)):
        return "a mapping"
    if isinstance(value, (YList, list)):
        return "a list"
    if isinstance(value, str):
        return f"text ({value!r})"
    return f"{type(value).__name__} ({value!r})"


@dataclass
class Problems:
    """Errors and warnings gathered while reading one or more files."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, file: Path, line: int, path: str, message: str) -> None:
        self.errors.append(f"{file}:{line}: {path}: {message}" if path else f"{file}:{line}: {message}")

    def warn(self, file: Path, line: int, path: str, message: str) -> None:
        self.warnings.append(f"{file}:{line}: {path}: {message}")

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


class Section:
    """Typed, range-checked access to one YAML mapping. Each read marks its key as used."""

    def __init__(self, data: YMap, file: Path, path: str, problems: Problems, line: int | None = None):
        self.data = data
        self.file = file
        self.path = path
        self.problems = problems
        self.line = data.line if line is None else line  # where this section's own key stands
        self._used: set = set()

    # -- helpers -----------------------------------------------------------------------------------------
    def key_path(self, key: Any) -> str:
        return f"{self.path}.{key}" if self.path else str(key)

    def line_of(self, key: Any) -> int:
        return self.data.key_lines.get(key, self.line)

    def error(self, key: Any, message: str) -> None:
        self.problems.error(self.file, self.line_of(key), self.key_path(key), message)

    def warn(self, key: Any, message: str) -> None:
        self.problems.warn(self.file, self.line_of(key), self.key_path(key), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: Any) -> tuple[bool, Any]:
        """(present, value). Missing and required -> error and (False, None)."""
        self._used.add(key)
        if key in self.data:
            return True, self.data[key]
        if default is REQUIRED:
            self.problems.error(self.file, self.line, self.key_path(key), "missing (required)")
        return False, None if default is REQUIRED else default

    # -- typed reads -------------------------------------------------------------------------------------
    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        unit: str = "",
    ) -> float | None:
        """A finite real number within [minimum, maximum] and > above; ints are accepted."""
        present, value = self._raw(key, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.error(key, f"must be a number{' in ' + unit if unit else ''}, got {_kind(value)}")
            return None
        value = float(value)
        if not math.isfinite(value):
            self.error(key, f"must be a finite number, got {value}")
            return None
        suffix = f" {unit}" if unit else ""
        if above is not None and not value > above:
            self.error(key, f"must be > {above:g}{suffix} (got {value:g})")
            return None
        if minimum is not None and value < minimum:
            self.error(key, f"must be >= {minimum:g}{suffix} (got {value:g})")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"must be <= {maximum:g}{suffix} (got {value:g})")
            return None
        return value

    def integer(
        self, key: str, default: Any = REQUIRED, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        present, value = self._raw(key, default)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be a whole number, got {_kind(value)}")
            return None
        if minimum is not None and value < minimum:
            self.error(key, f"must be >= {minimum} (got {value})")
            return None
        if maximum is not None and value > maximum:
            self.error(key, f"must be <= {maximum} (got {value})")
            return None
        return value

    def boolean(self, key: str, default: Any = REQUIRED) -> bool | None:
        present, value = self._raw(key, default)
        if not present:
            return value
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {_kind(value)}")
            return None
        return value

    def string(self, key: str, default: Any = REQUIRED, *, choices: tuple[str, ...] | None = None) -> str | None:
        present, value = self._raw(key, default)
        if not present:
            return value
        if not isinstance(value, str) or not value.strip():
            self.error(key, f"must be text, got {_kind(value)}")
            return None
        if choices is not None and value not in choices:
            self.error(key, f"must be one of {', '.join(choices)} (got {value!r})")
            return None
        return value

    def raw(self, key: str, default: Any = REQUIRED) -> Any:
        """The value as parsed, for fields whose type is checked by the caller (pins, say)."""
        return self._raw(key, default)[1]

    def section(self, key: str, *, optional: bool = False) -> Section | None:
        present, value = self._raw(key, None if optional else REQUIRED)
        if not present or (optional and value is None):
            return None
        if not isinstance(value, YMap):
            self.error(key, f"must be a mapping of keys, got {_kind(value)}")
            return None
        return Section(value, self.file, self.key_path(key), self.problems, self.line_of(key))

    def items(self, key: str, *, optional: bool = False) -> Iterator[tuple[int, Any, str, int]]:
        """Yield (index, value, path, line) for each item of a list."""
        present, value = self._raw(key, None if optional else REQUIRED)
        if not present or (optional and value is None):
            return
        if not isinstance(value, YList):
            self.error(key, f"must be a list, got {_kind(value)}")
            return
        if not value and not optional:
            self.error(key, "must not be empty")
        for index, item in enumerate(value):
            yield index, item, f"{self.key_path(key)}[{index}]", value.item_lines[index]

    def item_section(self, item: Any, path: str, line: int) -> Section | None:
        """Wrap one list item (as yielded by `items`) that must be a mapping."""
        if not isinstance(item, YMap):
            self.problems.error(self.file, line, path, f"must be a mapping of keys, got {_kind(item)}")
            return None
        return Section(item, self.file, path, self.problems, line)

    def finish(self) -> None:
        """Report every key that no read asked for."""
        known = sorted(str(k) for k in self._used)
        for key in self.data:
            if key not in self._used:
                hint = difflib.get_close_matches(str(key), known, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
                self.error(key, f"unknown key{extra}")
