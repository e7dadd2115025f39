"""Strict YAML, the one reader of configs, search spaces and overrides: a duplicate key is refused with its line
(PyYAML keeps the last one silently), aliases are refused (an alias bomb expands without limit), and size and
nesting depth are bounded before anything is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import ScalarNode

from emodistill.errors import ConfigError, one_line
from emodistill.files import read_bounded

MAX_BYTES = 1 << 20  # a config or a space is a few KiB; anything near this is not one
MAX_DEPTH = 64  # deeper than any config's sections; PyYAML's composer recurses, so depth is also a stack bound
MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing aliases, duplicate keys and deep nesting, its errors naming `source` and the line."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.name = source  # what PyYAML's own error marks call the stream
        self.depth = 0

    def refuse(self, mark: yaml.Mark, problem: str) -> ConfigError:
        """A ConfigError for `problem` at `mark`."""
        return ConfigError(f"{self.name}: line {mark.line + 1}: {problem}")

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(AliasEvent):
            raise self.refuse(self.peek_event().start_mark,
                              "YAML aliases (*name) are not allowed: write the value out where it is used")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.refuse(self.peek_event().start_mark, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        first_line = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # a collection as key is refused by PyYAML itself
            key = self.construct_object(key_node)
            if key in first_line:
                raise self.refuse(key_node.start_mark, f"duplicate key {key!r} (first at line {first_line[key]}): "
                                                       "keep one")
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """The value of YAML `text`; ConfigError naming `source` (and the line) when it is not strict, valid YAML."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters, more than the {MAX_BYTES} a YAML config may hold")
    loader = _StrictLoader(text, source)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({one_line(exc)})") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """The value of the YAML file at `path` (see parse_yaml); a file that cannot be read is a ConfigError too."""
    data = read_bounded(path, MAX_BYTES, "a YAML config")
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text, str(path))
