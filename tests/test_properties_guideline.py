"""Property-based tests of guideline YAML (hypothesis): mutated copies of tests/fixtures/kleene.

Random edits (keys deleted or renamed, types changed, odd values injected, items duplicated,
conditions nested deep) and hostile YAML (aliases, tags, bytes) go through engine.validate() and
engine.load(). Properties:
- validate returns a list of problems and load returns a Guideline or raises GuidelineInvalidError;
  nothing else is ever raised;
- validate says valid exactly when load works, and a guideline that loads evaluates patients;
- each call finishes within a time and memory bound.

Every example runs in a forked child (a hang inside durable_rules' C code cannot be interrupted
in-process): the child is killed after TIME_BOUND seconds and has MEMORY_BOUND bytes of address
space, so a runaway expansion fails the test instead of the machine.
"""

from __future__ import annotations

import copy
import os
import pickle
import resource
import select
import shutil
import signal
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties_patient import examples

import engine

KLEENE = Path(__file__).resolve().parent / "fixtures" / "kleene"
FILES = sorted(p.relative_to(KLEENE).as_posix() for p in KLEENE.rglob("*.yaml"))
ORIGINAL = {name: yaml.safe_load((KLEENE / name).read_text(encoding="utf-8")) for name in FILES}
TIME_BOUND = 10.0           # seconds for validate + load + a few evaluations of one small folder
MEMORY_BOUND = 3 << 30      # bytes of address space for the child (durable_rules and Python need ~0.5 GB)
PATIENTS = [{}, {"a": True}, {"b": True, "x": 4}, {"c": False, "x": 10}, {"a": False, "b": False, "c": True}]


def _child(folder: Path) -> tuple[str, str]:
    """('ok', summary) when the properties hold for `folder`, else ('broken', what happened)."""
    try:
        problems = engine.validate(folder)
        assert isinstance(problems, list)
    except Exception:  # noqa: BLE001 - anything but GuidelineInvalidError is a finding
        return "broken", "validate raised:\n" + traceback.format_exc(limit=-6)
    try:
        guideline = engine.load(folder)
    except engine.GuidelineInvalidError as exc:
        if not problems:
            return "broken", f"validate said valid, load refused: {exc.report()[:5]}"
        return "ok", f"invalid ({len(problems)} problem(s))"
    except Exception:  # noqa: BLE001 - anything but GuidelineInvalidError is a finding
        return "broken", "load raised something other than GuidelineInvalidError:\n" + traceback.format_exc(limit=-6)
    if problems:
        return "broken", f"load worked but validate reported {[str(p) for p in problems[:5]]}"
    for facts in PATIENTS:
        try:
            guideline.evaluate(facts).to_dict()
        except engine.EngineError as exc:
            if exc.exit_code != 2:
                return "broken", f"evaluate {facts}: {exc.report()}"
        except Exception:  # noqa: BLE001 - anything but GuidelineInvalidError is a finding
            return "broken", f"evaluate {facts} raised:\n" + traceback.format_exc(limit=-6)
    return "ok", "valid"


def check_folder(folder: Path) -> str:
    """Run the properties on `folder` in a forked child with time and memory bounds."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read)
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))
            try:
                outcome = _child(folder)
            except MemoryError:
                outcome = ("broken", f"ran out of the {MEMORY_BOUND >> 20} MiB memory bound")
            except BaseException as exc:  # noqa: BLE001 - anything at all is a finding
                outcome = ("broken", f"{type(exc).__name__}: {exc}")
            os.write(write, pickle.dumps(outcome))
        finally:
            os._exit(0)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], TIME_BOUND)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"validate/load of {folder} took longer than {TIME_BOUND} s (killed)")
        data = b""
        while chunk := os.read(read, 1 << 16):
            data += chunk
    finally:
        os.close(read)
        _, status = os.waitpid(pid, 0)
    if not data:
        pytest.fail(f"the child died (wait status {status}) on {folder}: crash or memory kill")
    kind, message = pickle.loads(data)
    assert kind == "ok", message
    return str(message)


def write_folder(root: Path, contents: dict[str, Any], raw: dict[str, bytes] | None = None) -> Path:
    if root.exists():
        shutil.rmtree(root)
    for name, data in contents.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    for name, data in (raw or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


# --- mutations -----------------------------------------------------------------------------------

def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and indexes) to a node inside a parsed YAML document."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def get(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([10**30, -1, 0.5, 1e308, -1e308]),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.text(max_size=12), st.sampled_from(["", "a", "x", "d", "e", "low", "r-and-not", "1", "\x00", "é" * 40]),
    st.lists(st.integers(0, 3), max_size=3), st.dictionaries(st.sampled_from(["fact", "is", "lt", "all", "not"]),
                                                             st.integers(0, 5), max_size=2))
conditions = st.recursive(
    st.builds(lambda f, op, v: {"fact": f, op: v}, st.sampled_from(["a", "b", "c", "x", "d", "e", "zz"]),
              st.sampled_from(["is", "lt", "le", "gt", "ge", "in", "known"]),
              st.one_of(st.booleans(), st.integers(-1, 11), st.sampled_from(["low", "high"]),
                        st.lists(st.sampled_from(["low", "high", True]), max_size=3))),
    lambda inner: st.one_of(st.builds(lambda c: {"not": c}, inner),
                            st.builds(lambda cs: {"all": cs}, st.lists(inner, max_size=3)),
                            st.builds(lambda cs: {"any": cs}, st.lists(inner, max_size=3)),
                            st.builds(lambda cs: {"none_known": cs}, st.lists(inner, max_size=3))),
    max_leaves=8)


def nest(condition: Any, depth: int, how: str) -> Any:
    for _ in range(depth):
        condition = {"not": condition} if how == "not" else {how: [condition]}
    return condition


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    contents = copy.deepcopy(ORIGINAL)
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(FILES))
        target = draw(st.sampled_from(paths(contents[name])))
        kind = draw(st.sampled_from(["delete", "replace", "retype", "duplicate", "rename", "condition", "nest"]))
        if not target:
            contents[name] = draw(odd_values) if kind in ("replace", "retype") else contents[name]
            continue
        parent, last = get(contents[name], target[:-1]), target[-1]
        if kind == "delete":
            del parent[last]
        elif kind == "replace":
            parent[last] = draw(odd_values)
        elif kind == "retype":
            value = parent[last]
            parent[last] = [value] if not isinstance(value, list) else {"0": value}
        elif kind == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["id", "when", "then", "fact", "is", "derive", "unit", str(last) + "s"]))] = \
                parent.pop(last)
        elif kind == "condition":
            parent[last] = draw(conditions)
        elif kind == "nest":
            parent[last] = nest(parent[last], draw(st.integers(1, 60)), draw(st.sampled_from(["not", "all", "any"])))
    return contents


@settings(max_examples=examples(25))
@given(mutated())
def test_a_mutated_guideline_validates_or_loads_consistently_and_never_raises(tmp_path_factory: Any,
                                                                              contents: dict[str, Any]) -> None:
    check_folder(write_folder(tmp_path_factory.mktemp("kleene") / "g", contents))


def test_the_unmutated_fixture_is_valid_and_loads(tmp_path: Path) -> None:
    assert check_folder(write_folder(tmp_path / "g", ORIGINAL)) == "valid"


# --- hostile YAML (issue 9: each of these crashed, hung or ran out of memory) ---------------------

def _laughs(levels: int) -> bytes:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return ("\n".join(lines) + f"\nrules: *a{levels - 1}\n").encode()


def _rule(i: int, when: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "title": "t", "when": when, "then": {"recommend": "r-and-not"}, "citations": [1]}


def _extra_rules(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"rules/extra.yaml": {"rules": rules}}


HOSTILE: dict[str, tuple[dict[str, Any], dict[str, bytes]]] = {
    "recursive alias": ({}, {"rules/extra.yaml": b"rules: &r [*r]\n"}),
    "billion laughs, 7 levels": ({}, {"rules/extra.yaml": _laughs(7)}),
    "billion laughs, 9 levels": ({}, {"rules/extra.yaml": _laughs(9)}),
    "not nested 200 deep": (_extra_rules([_rule(0, nest({"fact": "a", "is": True}, 200, "not"))]), {}),
    "all nested 1000 deep": ({}, {"rules/extra.yaml": b"rules:\n- {id: r0, title: t, citations: [1], "
                                                      b"then: {recommend: r-and-not}, when: "
                                                      + b"{all: [" * 1000 + b"{fact: a, is: true}" + b"]}" * 1000
                                                      + b"}\n"}),
    "lt: .nan": ({}, {"rules/extra.yaml": b"rules:\n- {id: r0, title: t, when: {fact: x, lt: .nan},"
                                          b" then: {recommend: r-and-not}, citations: [1]}\n"}),
    "lt: .inf": ({}, {"rules/extra.yaml": b"rules:\n- {id: r0, title: t, when: {fact: x, lt: .inf},"
                                          b" then: {recommend: r-and-not}, citations: [1]}\n"}),
    "range: [.nan, 10]": ({}, {"facts.yaml": (KLEENE / "facts.yaml").read_bytes().replace(b"range: [0, 10]",
                                                                                          b"range: [.nan, 10]")}),
    "in: 600 values": (_extra_rules([_rule(0, {"fact": "e", "in": [f"v{i}" for i in range(600)]})]), {}),
    "24 x any [c, not c]": (_extra_rules([_rule(0, {"all": [{"any": [{"fact": "c", "is": True},
                                                                      {"not": {"fact": "c", "is": True}}]}] * 24})]),
                            {}),
    "250 rules of one shape": (_extra_rules([_rule(i, {"fact": "a", "is": True}) for i in range(250)]), {}),
    "2000 rules": (_extra_rules([_rule(i, {"fact": "x", "lt": i % 10}) for i in range(2000)]), {}),
    "python tag": ({}, {"rules/extra.yaml": b"rules: !!python/object/apply:os.system [echo hi]\n"}),
    "non-UTF-8 bytes": ({}, {"rules/extra.yaml": b"rules: [\xff\xfe]\n"}),
    "UTF-16": ({}, {"rules/extra.yaml": "rules: []\n".encode("utf-16")}),
    "tabs and a duplicate key": ({}, {"rules/extra.yaml": b"rules: []\nrules:\n\t- x\n"}),
    "empty file": ({}, {"facts.yaml": b""}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_or_loaded_within_bounds(tmp_path: Path, case: str) -> None:
    extra, raw = HOSTILE[case]
    contents = {**copy.deepcopy(ORIGINAL), **extra}
    check_folder(write_folder(tmp_path / "g", contents, raw))


# --- random well-formed conditions: the compiled engine agrees with the reference evaluator --------

def _atoms() -> st.SearchStrategy[dict[str, Any]]:
    numbers = st.sampled_from([0, 1, 4.9, 5, 5.5, 10])
    return st.one_of(
        st.builds(lambda f, v: {"fact": f, "is": v}, st.sampled_from("abcd"), st.booleans()),
        st.builds(lambda f, v: {"fact": f, "known": v}, st.sampled_from(["a", "b", "c", "x"]), st.booleans()),
        st.builds(lambda ops: {"fact": "x", **ops},
                  st.dictionaries(st.sampled_from(["lt", "le", "gt", "ge"]), numbers, min_size=1, max_size=2)),
        st.builds(lambda v: {"fact": "e", "is": v}, st.sampled_from(["low", "high"])),
        st.builds(lambda vs: {"fact": "e", "in": vs}, st.lists(st.sampled_from(["low", "high"]), min_size=1,
                                                               max_size=2, unique=True)))


well_formed = st.recursive(
    _atoms(),
    lambda inner: st.one_of(st.builds(lambda c: {"not": c}, inner),
                            *(st.builds(lambda cs, k=k: {k: cs}, st.lists(inner, min_size=1, max_size=3))
                              for k in ("all", "any", "none_known"))),
    max_leaves=6)


@settings(max_examples=examples(15))
@given(st.lists(st.tuples(st.sampled_from(["d-true", "r-and-not", "r-none-known", "r-any-enum", "r-not-all",
                                           "r-known-false", "r-x-unknown"]), well_formed), min_size=1, max_size=4))
def test_random_conditions_compile_to_the_reference_three_valued_meaning(tmp_path_factory: Any,
                                                                        edits: list[tuple[str, Any]]) -> None:
    from test_properties_patient import agree
    from threevalued import Reference

    contents = copy.deepcopy(ORIGINAL)
    for rule_id, condition in edits:
        rule = next(r for name in FILES if name.startswith("rules/") for r in contents[name]["rules"]
                    if r["id"] == rule_id)
        rule["when"] = condition
    folder = write_folder(tmp_path_factory.mktemp("kleene") / "g", contents)
    problems = engine.validate(folder)
    if problems:   # only d-true naming d itself (not an input: refused) may make it invalid
        assert all("'d'" in p.message for p in problems), problems
        return
    guideline, ref = engine.load(folder), Reference.read(folder)
    for facts in _kleene_patients():
        agree(ref, guideline, facts)


def _kleene_patients() -> list[dict[str, Any]]:
    import itertools
    choices: list[list[Any]] = [[None, True, False]] * 3 + [[None, 0, 4.9, 5, 10]]
    return [{n: v for n, v in zip("abcx", combo, strict=True) if v is not None}
            for combo in itertools.product(*choices)]
