"""Errors that stop a run before it can produce evidence; the CLI turns them into exit status 2."""


class RunError(Exception):
    """An infrastructure problem: a target not ready, a plan that selects nothing, a build failure."""


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM during a run: the bundle holds everything obtained, marked incomplete."""

    def __init__(self, bundle):
        self.bundle = bundle
        super().__init__(f"interrupted; {bundle} is marked incomplete and holds every result "
                         f"obtained so far: pcert run --resume {bundle} finishes it")
