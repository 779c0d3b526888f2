"""Errors that stop a run before it can produce evidence; the CLI turns them into exit status 2."""


class RunError(Exception):
    """An infrastructure problem: a target not ready, a plan that selects nothing, a build failure."""
