"""The one exception the targets package raises for bad input or a missing prerequisite.

Its message names the file, field or tool at fault and what to do about it, so a CLI can print
it as it is:

>>> raise TargetError("qemu-system-x86_64 not found: apt-get install qemu-system-x86")
Traceback (most recent call last):
  ...
targets.errors.TargetError: qemu-system-x86_64 not found: apt-get install qemu-system-x86
"""


class TargetError(Exception):
    """A target cannot be loaded, built or run; the message says why and what to do."""
