"""The configuration file named by ANVYL_CONFIG: one YAML file, one schema, read here only.

Its top level holds settings (any field of `Settings`, e.g. `port: 9000`) and sections that their
owners validate: `models` and `routing` (llm/config.py), `mcp_servers` (loop/mcp_client.py),
`workspace` (workspaces/). A key that is neither is an error naming its line. The YAML is composed
into nodes first so that every value keeps its line, and validation errors point at it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

CONFIG_ENV = "ANVYL_CONFIG"
SECTIONS = ("models", "routing", "mcp_servers", "workspace")

Location = tuple[str | int, ...]


class ConfigFileError(ValueError):
    """The configuration file cannot be read or does not fit its schema."""


class ConfigFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: Path
    data: dict[str, Any]
    lines: dict[Location, int]

    def section(self, name: str) -> Any:
        return self.data.get(name)

    def settings_values(self) -> dict[str, Any]:
        """The top-level keys that are settings (every key but the sections)."""
        return {key: value for key, value in self.data.items() if key not in SECTIONS}

    def line_of(self, location: Location) -> int | None:
        """The line of the value at `location`, or of the nearest enclosing one."""
        for end in range(len(location), -1, -1):
            if location[:end] in self.lines:
                return self.lines[location[:end]]
        return None

    def where(self, location: Location) -> str:
        line = self.line_of(location)
        return f"{self.path}:{line}" if line else str(self.path)

    def describe(self, exc: ValidationError, section: Location = ()) -> str:
        """A pydantic error of a section as `file:line: field: message` lines."""
        messages = []
        for error in exc.errors():
            location = (*section, *error["loc"])
            field = ".".join(str(part) for part in location) or "(top level)"
            messages.append(f"{self.where(location)}: {field}: {error['msg']}")
        return "\n  ".join(messages)

    def check_keys(self, settings: Collection[str]) -> None:
        """Refuse a top-level key that is neither a setting nor a section."""
        unknown = [key for key in self.data if key not in SECTIONS and key not in settings]
        if unknown:
            raise ConfigFileError(
                "\n  ".join(f"{self.where((key,))}: unknown key {key!r}" for key in unknown)
                + f"\n  the sections are {', '.join(SECTIONS)}; the settings are the ANVYL_* "
                "variables in lower case without the prefix (`anvyl config show` lists them)"
            )


def read_config_file(path: Path) -> ConfigFile:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{CONFIG_ENV}={path}: cannot read the file: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise ConfigFileError(f"{path}:{line}: invalid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}:1: the configuration file must be a mapping of keys")
    lines: dict[Location, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return ConfigFile(path=path, data=data, lines=lines)


def config_file_from_env(environ: Mapping[str, str] = os.environ) -> ConfigFile | None:
    value = environ.get(CONFIG_ENV)
    return read_config_file(Path(value).expanduser()) if value else None


def _index_lines(node: yaml.Node, path: Location, out: dict[Location, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index_lines(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1  # point at the key, not the value
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), out)
