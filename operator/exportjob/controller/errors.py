"""Errors the API layer raises and the decision layers handle (pure: no client imported)."""


class Conflict(Exception):
    """The object changed since it was read (HTTP 409): someone else acted first."""


class NotOurs(Exception):
    """An object with the worker Job's name exists but belongs to another owner."""


class NamespaceTerminating(Exception):
    """The namespace is being deleted: nothing new can be created in it (HTTP 403 from NamespaceLifecycle)."""
