"""Kubernetes ``$(VAR)`` expansion and container environment assembly.

Pure functions used by the process kubelet (:mod:`devcluster.kubelet`) to turn a
container's ``env``/``envFrom``/``command``/``args`` into the strings a real
kubelet would hand to the container runtime.  The expansion follows
``k8s.io/kubernetes/third_party/forked/golang/expansion``: ``$(NAME)`` is replaced
by the variable's value when it is defined, left untouched otherwise, and ``$$``
escapes a literal ``$`` (so ``$$(NAME)`` yields ``$(NAME)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

__all__ = ["expand", "expand_command", "expand_env", "mapping_for"]


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """Return a lookup that searches ``contexts`` in order and re-wraps unknown names."""

    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"

    return lookup


def _read_reference(rest: str) -> tuple[str, bool, int]:
    """Interpret what follows a ``$``: (text, is_variable_name, characters consumed)."""
    first = rest[0]
    if first == "$":  # "$$" -> literal "$"
        return "$", False, 1
    if first == "(":
        close = rest.find(")", 1)
        if close != -1:
            return rest[1:close], True, close + 1
        return "$(", False, 1  # unterminated reference: keep it literally
    return "$" + first, False, 1


def expand(value: str, lookup: Callable[[str], str]) -> str:
    """Expand ``$(VAR)`` references in ``value`` using ``lookup`` (Kubernetes rules)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(value):
        if value[cursor] == "$" and cursor + 1 < len(value):
            out.append(value[checkpoint:cursor])
            text, is_var, advance = _read_reference(value[cursor + 1 :])
            out.append(lookup(text) if is_var else text)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(value[checkpoint:])
    return "".join(out)


def expand_env(entries: Iterable[tuple[str, str, bool]], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build a container environment from ordered ``(name, value, expandable)`` entries.

    ``expandable`` is true for literal ``value:`` entries, which may reference any
    variable defined *before* them (or in ``base``); values from ``valueFrom`` and
    ``envFrom`` are taken verbatim, exactly as the kubelet does.
    """
    env: dict[str, str] = {}
    base = dict(base or {})
    for name, value, expandable in entries:
        env[name] = expand(value, mapping_for(env, base)) if expandable else value
    return env


def expand_command(parts: Iterable[str], env: Mapping[str, str]) -> list[str]:
    """Expand ``$(VAR)`` in a container's command or args with its final environment."""
    lookup = mapping_for(env)
    return [expand(p, lookup) for p in parts]
