"""Why a boot stopped before its end record: read from the machine's outcome and the console.

The reason becomes the verdict reason of the test case in flight, so it says what a
certification engineer needs: `kernel panic: Attempted to kill init!`, `hung: no progress for
30 s`, `guest reset`, `crashed: runtime killed by SIGKILL`.

>>> from types import SimpleNamespace as O
>>> stop_reason(O(reason="powered off", exit_status=0),
...             b"[ 3.1] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\\r\\n",
...             idle_timeout_s=30, run_timeout_s=600)
'kernel panic: Attempted to kill init! exitcode=0x0000000b'
>>> stop_reason(O(reason="idle timeout", exit_status=None), b"", idle_timeout_s=30, run_timeout_s=600)
'hung: no progress for 30 s'
"""

from __future__ import annotations

import re
import signal

_PANIC = re.compile(rb"Kernel panic - not syncing:? ?([^\r\n]{0,160})")
_OOPS = re.compile(rb"(?:BUG: [^\r\n]{0,120}|Oops: [^\r\n]{0,80}|general protection fault[^\r\n]{0,80})")
_PRINTABLE = re.compile(rb"[^\x20-\x7e]")


def _text(raw: bytes) -> str:
    return _PRINTABLE.sub(b"?", raw).decode("ascii").strip()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stop_reason(outcome, boot_console: bytes, *, idle_timeout_s: float, run_timeout_s: float) -> str:
    """One line saying why the boot ended without its end record."""
    panic = _PANIC.search(boot_console)
    if panic:
        return f"kernel panic: {_text(panic.group(1))}".rstrip(": ")
    oops = _OOPS.search(boot_console)
    if oops:
        return f"kernel oops: {_text(oops.group(0))}"
    if outcome.reason == "idle timeout":
        return f"hung: no progress for {idle_timeout_s:g} s"
    if outcome.reason == "run timeout":
        return f"hung: the run exceeded {run_timeout_s:g} s"
    if outcome.reason == "powered off":
        # With -no-reboot a guest reset ends QEMU just as a power-off does.
        return "guest reset: the machine stopped without an end record"
    status = outcome.exit_status
    if status is not None and status < 0:
        return f"crashed: runtime killed by {_signal_name(-status)}"
    if outcome.reason == "exited":
        return f"guest exited with status {status} before its end record"
    return f"stopped: {outcome.reason}"
