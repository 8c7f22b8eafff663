"""Strict YAML reading that remembers where every value came from."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Problem
from engine.loader.safefile import read_text
from engine.model.source import Document, Path_

# Bounds on what one file may expand into. Aliases share nodes, so a few lines can name a
# billion values ("billion laughs": 7 levels of 10 aliases took 12 s and 1.6 GB) or a cycle
# (`rules: &r [*r]`); every value reached is counted, through aliases too. The bundled guideline's
# largest file has ~3,000 values and nests 12 deep.
MAX_NODES = 100_000
MAX_DEPTH = 50
# A guideline number is a threshold, a range bound, points or a conversion: a finite float of
# this magnitude at most (integers stay exact in a float up to 2**53, about 9e15).
MAX_MAGNITUDE = 10**15
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

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


class _Limit(Exception):
    """Construction stopped at a node: (node, code, message)."""


class _Builder:
    """Builds plain data from the node graph, remembering positions, within the bounds above."""

    def __init__(self, doc: Document, problems: list[Problem], loader: _StrictLoader):
        self.doc, self.problems, self.loader = doc, problems, loader
        self.count = 0

    def _at(self, node: yaml.Node, code: str, message: str) -> Problem:
        return Problem(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1, code, message)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Limit(self._at(node, "too-large", f"the file expands into more than {MAX_NODES:,} values "
                                  "(aliases count once per use); a guideline file needs far fewer"))
        if len(path) > MAX_DEPTH:
            raise _Limit(self._at(node, "too-deep", f"values nest more than {MAX_DEPTH} levels deep (or an "
                                  "alias refers to itself); split the condition into derived facts"))
        self.doc.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Only a scalar can be a key; constructing a mapping or alias as a key could expand it.
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else key_node
            if not isinstance(key, (str, int)):
                kind = {yaml.MappingNode: "dict", yaml.SequenceNode: "list"}.get(type(key), type(key).__name__)
                self.problems.append(self._at(key_node, "yaml-key", f"a key must be text, not {kind}"))
                continue
            key = str(key)
            if key in result:
                self.problems.append(self._at(key_node, "duplicate-key", f"key '{key}' appears twice in this mapping"))
                continue
            # The key's own position: schema errors about a key (typos) point at it.
            self.doc.positions[path + (key, "$key")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.build(value_node, path + (key,))
        return result

    def _scalar(self, node: yaml.Node) -> Any:
        if node.tag in _NUMBER_TAGS and len(str(node.value)) > 40:
            raise _Limit(self._at(node, "bad-number", f"a number of {len(str(node.value)):,} characters; "
                                  f"guideline numbers are at most {MAX_MAGNITUDE:.0e} in magnitude"))
        try:
            value = self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            raise _Limit(self._at(node, "yaml-value", f"unreadable value ({type(exc).__name__})")) from exc
        if isinstance(value, float) and not math.isfinite(value):
            raise _Limit(self._at(node, "bad-number", f"{value!r} is not a finite number; guideline numbers "
                                  "are finite"))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_MAGNITUDE:
            raise _Limit(self._at(node, "bad-number", f"{value!r} is larger than {MAX_MAGNITUDE:.0e} in "
                                  "magnitude; guideline numbers are thresholds, ranges, points or factors"))
        return value


def read_yaml(path: Path, display_name: str, root: Path | None = None) -> tuple[Document, list[Problem]]:
    """Parse one YAML file; syntax errors come back as located problems, never exceptions.

    `root`: the guideline folder, when the file must lie inside it (engine/loader/safefile.py).
    """
    doc = Document(display_name, None)
    problems: list[Problem] = []
    text, read_problems = read_text(path, display_name, root)
    if text is None:
        return doc, read_problems
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _Builder(doc, problems, loader).build(node, ())
    except _Limit as exc:
        problems.append(exc.args[0])
    except RecursionError:  # only the pure-Python parser recurses; libyaml stops at 1,000 levels
        problems.append(Problem(display_name, 1, 1, "too-deep", f"values nest more than {MAX_DEPTH} levels deep"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(display_name, line, col, "yaml-syntax", f"{exc.problem or exc}"))
    except yaml.YAMLError as exc:
        problems.append(Problem(display_name, 1, 1, "yaml-syntax", str(exc)))
    finally:
        loader.dispose()
    return doc, problems
