"""PyYAML's safe loader with the bounds of ``schedules.limits``, and duplicate keys refused.

libyaml (when PyYAML has it) scans and parses; composing and constructing stay PyYAML's Python
code, which this subclass extends:

- ``compose_node`` counts every value, an alias counting as all the values of its anchor, so
  a "billion laughs" stops (at MAX_ALIAS_EXTRA_VALUES) while it is still a few nodes; an alias
  used inside its own anchor (a recursive structure) and nesting deeper than MAX_DEPTH are
  refused there.
- ``flatten_mapping`` (run once per mapping before its keys are merged or read) refuses a key
  given twice in one mapping: YAML would otherwise keep the last value silently. Keys that
  ``<<`` merges in may still be overridden, as YAML intends.
- integers longer than MAX_NUMBER_DIGITS are refused before Python converts them.
"""
from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode
from yaml.resolver import Resolver

from schedules import limits

try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python scanner and parser
    CParser = None

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.MarkedYAMLError):
    """A document beyond a bound or with a duplicate key; ``problem`` says which, ``problem_mark`` where."""

    def __init__(self, problem: str, mark: Any):
        super().__init__(problem=problem, problem_mark=mark)


if CParser is not None:
    class _Base(Composer, CParser, SafeConstructor, Resolver):
        # Composer first: its Python compose_node (extended below) replaces libyaml's.
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)
else:
    _Base = yaml.SafeLoader


class BoundedSafeLoader(_Base):
    """``yaml.load(text, Loader=BoundedSafeLoader)``: safe_load within ``schedules.limits``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._values = 0  # values composed so far, aliases expanded
        self._aliased = 0  # of which through aliases
        self._depth = 0
        self._anchor_values: dict[str, int] = {}  # anchor -> the values it stands for
        self._open_anchors: set[str] = set()  # anchors whose node is being composed
        self._checked: set[int] = set()  # ids of mapping nodes whose keys were checked

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open_anchors:
                raise YamlRefused(f"recursive alias *{event.anchor}: the value anchored as "
                                  f"&{event.anchor} would contain itself", event.start_mark)
            values = self._anchor_values.get(event.anchor, 1)
            self._aliased += values
            if self._aliased > self._values - self._aliased + values + limits.MAX_ALIAS_EXTRA_VALUES:
                raise YamlRefused(str(limits.aliases_too_many()), event.start_mark)
            self._count(values, event.start_mark)
            return super().compose_node(parent, index)  # an undefined alias is PyYAML's error
        self._depth += 1
        if self._depth > limits.MAX_DEPTH:
            raise YamlRefused(str(limits.too_deep()), event.start_mark)
        before = self._values
        self._count(1, event.start_mark)
        if event.anchor is not None:
            self._open_anchors.add(event.anchor)
        node = super().compose_node(parent, index)
        if event.anchor is not None:
            self._open_anchors.discard(event.anchor)
            self._anchor_values[event.anchor] = self._values - before
        self._depth -= 1
        return node

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > limits.MAX_VALUES:
            raise YamlRefused(str(limits.too_many()), mark)

    def flatten_mapping(self, node: MappingNode) -> None:
        if id(node) not in self._checked:  # before merging changes node.value
            self._checked.add(id(node))
            self._refuse_duplicate_keys(node)
        super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        first: dict[Any, ScalarNode] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                continue  # a non-scalar key is refused later (unhashable, or not a string)
            key = self.construct_object(key_node)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:
                continue
            if earlier is not key_node:
                shown = repr(key) if len(repr(key)) <= 60 else repr(key)[:57] + "..."
                raise YamlRefused(f"duplicate key {shown} (first given at line {earlier.start_mark.line + 1}); "
                                  "YAML would silently keep only the last value", key_node.start_mark)

    def construct_bounded_int(self, node: ScalarNode) -> int:
        digits = sum(ch.isalnum() for ch in node.value)
        if digits > limits.MAX_NUMBER_DIGITS:
            raise YamlRefused(str(limits.too_long_number(digits)), node.start_mark)
        return super().construct_yaml_int(node)


BoundedSafeLoader.add_constructor("tag:yaml.org,2002:int", BoundedSafeLoader.construct_bounded_int)
