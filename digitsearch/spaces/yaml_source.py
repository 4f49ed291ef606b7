"""Reading a space's YAML strictly (a duplicate key is an error, not a silent overwrite) and
remembering where each parameter and starting point is, so that messages can name the line."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            dup = key in seen
            seen.add(key)
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Lines:
    """1-based line numbers of the keys under ``params:`` and of the ``start:`` points."""

    params: dict[str, int] = field(default_factory=dict)
    #: per point: (line of the point, {parameter name: line of its key})
    start: list[tuple[int, dict[str, int]]] = field(default_factory=list)


def _key_lines(node: yaml.MappingNode) -> dict[str, int]:
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def lines_of(text: str) -> Lines:
    """Where things are in ``text``, for nicer messages (empty if it does not compose)."""
    lines = Lines()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if not isinstance(root, yaml.MappingNode):
        return lines
    for k, v in root.value:
        if not isinstance(k, yaml.ScalarNode):
            continue
        if k.value == "params" and isinstance(v, yaml.MappingNode):
            lines.params = _key_lines(v)
        elif k.value == "start" and isinstance(v, yaml.SequenceNode):
            lines.start = [
                (item.start_mark.line + 1, _key_lines(item) if isinstance(item, yaml.MappingNode) else {})
                for item in v.value
            ]
    return lines
