"""Strict YAML reading that remembers where every value came from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Problem
from engine.model.source import Document, Path_

# libyaml's parser when PyYAML was built with it: ~5x faster to load a guideline.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_Base):  # type: ignore[valid-type,misc]
    """YAML 1.2-like booleans (only true/false) and no implicit dates.

    YAML 1.1 would read an enum value `no` as False and `2026-12-01` as a date object; both
    would surface as confusing type errors far from their cause.
    """


_StrictLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def _construct(node: yaml.Node, path: Path_, doc: Document, problems: list[Problem], loader: _StrictLoader) -> Any:
    doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)):
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                        "yaml-key", f"a key must be text, not {type(key).__name__}"))
                continue
            key = str(key)
            if key in result:
                problems.append(Problem(doc.file, key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                        "duplicate-key", f"key '{key}' appears twice in this mapping"))
                continue
            # The key's own position: schema errors about a key (typos) point at it.
            doc.positions[path + (key, "$key")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _construct(value_node, path + (key,), doc, problems, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, problems, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def read_yaml(path: Path, display_name: str) -> tuple[Document, list[Problem]]:
    """Parse one YAML file; syntax errors come back as located problems, never exceptions."""
    doc = Document(display_name, None)
    problems: list[Problem] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return doc, [Problem(display_name, 1, 1, "unreadable", str(exc))]
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _construct(node, (), doc, problems, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(display_name, line, col, "yaml-syntax", f"{exc.problem or exc}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(display_name, 1, 1, "yaml-syntax", str(exc)))
    finally:
        loader.dispose()
    return doc, problems
