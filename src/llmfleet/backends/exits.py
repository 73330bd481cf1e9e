"""What a replica's exit status means, in words a person can act on; pure.

Python reports a process killed by a signal as a negative exit code (``-4``),
a shell as ``128 + N`` (``132``). Either way an operator reading "exit code -4"
learns nothing; ``describe_exit`` names the signal, says what usually causes
it and what to do about it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExitMeaning:
    """One exit status, explained: ``summary`` for a status line, ``fix`` for a hint."""

    summary: str
    fix: str | None = None

    def __str__(self) -> str:
        return self.summary if self.fix is None else f"{self.summary}. Fix: {self.fix}"


_SIGNALS: dict[signal.Signals, ExitMeaning] = {
    signal.SIGILL: ExitMeaning(
        "killed by SIGILL: the engine binary uses an instruction this CPU cannot run",
        "for llama.cpp, run `llmfleet fetch` (an install proves it answers on this CPU and "
        "records a setting that works: remove the version's folder under "
        "~/.cache/llmfleet/engines/llamacpp to make it prove again), or set "
        'engine.env LLAMA_ARG_REPACK: "false"',
    ),
    signal.SIGKILL: ExitMeaning(
        "killed by SIGKILL: usually the kernel's out-of-memory killer (see `dmesg`), "
        "or a `kill -9`",
        "give the service more memory, or lower its context or slots",
    ),
    signal.SIGSEGV: ExitMeaning(
        "killed by SIGSEGV (segmentation fault): a bug in the engine, or a model file it "
        "cannot read",
        "check the model with `llmfleet fetch --verify`, or try another engine version",
    ),
    signal.SIGBUS: ExitMeaning(
        "killed by SIGBUS: memory-mapped data went away, often a model file truncated or "
        "replaced while the engine used it",
        "`llmfleet fetch --verify` re-checks the model files",
    ),
    signal.SIGABRT: ExitMeaning(
        "aborted (SIGABRT): the engine stopped on a failed check of its own",
        "its last log lines say which check failed",
    ),
    signal.SIGFPE: ExitMeaning(
        "killed by SIGFPE: an arithmetic fault in the engine",
        "try another engine version",
    ),
    signal.SIGTERM: ExitMeaning("stopped by SIGTERM sent from outside llmfleet"),
    signal.SIGINT: ExitMeaning("stopped by SIGINT sent from outside llmfleet"),
    signal.SIGHUP: ExitMeaning("stopped by SIGHUP (its terminal or session went away)"),
}

_CODES = {
    126: ExitMeaning(
        "exited with code 126: the engine executable cannot be run",
        "check its permissions, or reinstall with `llmfleet fetch`",
    ),
    127: ExitMeaning(
        "exited with code 127: the engine executable or a library it needs is missing",
        "reinstall the engine version with `llmfleet fetch`",
    ),
}


def exit_signal(code: int) -> signal.Signals | None:
    """The signal that ended a process, from Python's ``-N`` or a shell's ``128+N``."""
    number = -code if code < 0 else code - 128 if 128 < code < 160 else None
    if number is None:
        return None
    try:
        return signal.Signals(number)
    except ValueError:
        return None


def describe_exit(code: int | None) -> ExitMeaning:
    """Explain an exit status; ``None`` means the status is not known."""
    if code is None:
        return ExitMeaning("exited with an unknown status")
    if code in _CODES:
        return _CODES[code]
    sig = exit_signal(code)
    if sig is not None:
        return _SIGNALS.get(sig, ExitMeaning(f"killed by {sig.name}"))
    return ExitMeaning(f"exited with code {code}")
