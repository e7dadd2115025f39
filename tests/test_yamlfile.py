"""The strict YAML reader: duplicate keys, aliases, depth and size refused in one line naming the file and line."""

import pytest

from emodistill.errors import ConfigError
from emodistill.yamlfile import MAX_BYTES, parse_yaml, read_yaml


@pytest.mark.parametrize("text, problem", [
    ("train:\n  steps: 3\nloss: {}\ntrain:\n  steps: 100000\n",
     "x.yaml: line 4: duplicate key 'train' (first at line 1)"),
    ("a:\n  b: 1\n  b: 2\n", "x.yaml: line 3: duplicate key 'b' (first at line 2)"),
    ("a: &a [1, 2]\nb: &b [*a, *a]\n", "x.yaml: line 2: YAML aliases (*name) are not allowed"),
    ("a: &a {x: 1}\nb:\n  <<: *a\n", "x.yaml: line 3: YAML aliases"),
    ("a: " + "[" * 100_000 + "]" * 100_000 + "\n", "x.yaml: line 1: nested deeper than 64 levels"),
    ("a: [1\n", "x.yaml: not valid YAML (while parsing a flow sequence"),
])
def test_refused_naming_file_and_line(tmp_path, text, problem):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        read_yaml(path)
    message = str(refused.value)
    assert problem in message and "\n" not in message, message


def test_size_is_bounded_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: [" + "1, " * MAX_BYTES + "]\n")
    with pytest.raises(ConfigError, match=r"big.yaml: \d+ bytes, more than the 1048576"):
        read_yaml(path)


def test_not_utf8_and_unreadable(tmp_path):
    (tmp_path / "latin.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(ConfigError, match="latin.yaml: not UTF-8 text"):
        read_yaml(tmp_path / "latin.yaml")
    with pytest.raises(ConfigError, match="missing.yaml: cannot be read"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="/dev/zero: not a regular file"):  # would be read forever
        read_yaml("/dev/zero")


def test_plain_yaml_reads_as_safe_load_would():
    assert parse_yaml("a: {b: [1, 2.5, x]}\nc: null\n'1': 1\n1: 2\n", "s") == {
        "a": {"b": [1, 2.5, "x"]}, "c": None, "1": 1, 1: 2}
