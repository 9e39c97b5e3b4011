"""How every ``python -m`` command of vvc_batch ends on a user's mistake: one line on stderr,
``error: <what was wrong and what to do>``, and exit status 2. Tracebacks are for bugs.

Each command's ``main`` is wrapped once::

    @command
    def main(argv: list[str] | None = None) -> int:
        ...

and raises (or returns :func:`fail`) where the user's input cannot work. What counts as the
user's mistake (:func:`user_error`):

* any :class:`~vvc_batch.errors.VVCError` (a missing data directory or circuit file, an
  unknown system name, a folder that is not a run folder, a :class:`~vvc_batch.errors.UsageError`
  the command raised on its arguments, ...), also one that a worker process of the vector
  engine raised (the engine raises vvc_batch's own errors as themselves) or that a Ray task
  raised (Ray's error carries it as its ``cause``); except a
  :class:`~vvc_batch.errors.WorkerError`, a worker's crash, which carries the worker's
  traceback: a bug;
* an optional dependency that is not installed (``ModuleNotFoundError`` for torch,
  Stable-Baselines3, Ray, matplotlib, networkx or pillow): the line names the extra to
  install;
* an ``OSError`` on a path given on the command line (a ``--json`` file in a folder that
  does not exist, ...).

argparse's own errors (an unknown option, a value of the wrong type) already exit with
status 2, after the usage line.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from typing import Callable, Sequence

from vvc_batch.errors import MissingDependencyError, UsageError, VVCError, WorkerError

#: the exit status of a user's mistake (argparse's too)
EXIT_USAGE = 2

#: top-level module -> (what to pip install, the vvc_batch extra that brings it)
OPTIONAL_DEPENDENCIES: dict[str, tuple[str, str]] = {
    "torch": ("torch", "train"),
    "stable_baselines3": ("stable-baselines3", "train"),
    "ray": ("ray[rllib]", "ray"),
    "matplotlib": ("matplotlib", "plots"),
    "networkx": ("networkx", "plots"),
    "PIL": ("pillow", "plots"),
}

Main = Callable[..., int]


def one_line(text: str) -> str:
    """``text`` on one line: its lines, stripped, joined by spaces."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def missing_dependency(exc: BaseException) -> MissingDependencyError | None:
    """The :class:`~vvc_batch.errors.MissingDependencyError` that ``exc`` means, if it is an
    import of an optional dependency that is not installed (not one that is installed but
    fails inside)."""
    if isinstance(exc, MissingDependencyError):
        return exc
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    root = exc.name.partition(".")[0]
    if root not in OPTIONAL_DEPENDENCIES:
        return None
    try:
        installed = importlib.util.find_spec(root) is not None
    except (ImportError, ValueError):
        installed = False
    if installed:
        return None
    package, extra = OPTIONAL_DEPENDENCIES[root]
    return MissingDependencyError(
        f"{package} is not installed; it comes with vvc_batch's optional '{extra}' extra: "
        f"python -m pip install 'vvc_batch[{extra}]' (or python -m pip install '{package}')")


def _remote_cause(exc: BaseException) -> BaseException:
    """The exception a Ray task raised, for Ray's error that carries it; else ``exc``."""
    cause = getattr(exc, "cause", None)
    if type(exc).__module__.startswith("ray.") and isinstance(cause, BaseException):
        return cause
    return exc


def _names_an_argument(exc: OSError, argv: Sequence[str]) -> bool:
    """Whether the path of an ``OSError`` is one given on the command line."""
    given = set()
    for arg in argv:
        for value in (arg, arg.partition("=")[2]):
            if value:
                given.add(os.path.normpath(os.path.expanduser(value)))
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    return any(os.path.normpath(os.fsdecode(p)) in given for p in paths)


def user_error(exc: BaseException, argv: Sequence[str] = ()) -> str | None:
    """The one-line message of ``exc`` if it is a user's mistake (see the module's doc), else
    None (a bug: its traceback should show). ``argv``: the command line's arguments."""
    exc = _remote_cause(exc)
    missing = missing_dependency(exc)
    if missing is not None:
        return one_line(str(missing))
    if isinstance(exc, VVCError) and not isinstance(exc, WorkerError):
        return one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, OSError) and _names_an_argument(exc, argv):
        return one_line(str(exc))
    return None


def fail(error: BaseException | str) -> int:
    """Print ``error: <error>`` on one line to stderr; returns :data:`EXIT_USAGE` (``return
    fail(...)`` from a command's ``main``)."""
    if isinstance(error, BaseException):
        error = _remote_cause(error)
    text = one_line(str(error)) or type(error).__name__
    print(f"error: {text}", file=sys.stderr)
    return EXIT_USAGE


def check_output_file(path: str | None, flag: str) -> None:
    """Refuse an output file (``--json FILE``) whose folder does not exist or that is a folder,
    before the command does its work rather than after.

    Raises:
        UsageError: naming ``flag``.
    """
    if path is None:
        return
    target = os.path.expanduser(path)
    folder = os.path.dirname(target) or "."
    if os.path.isdir(target):
        raise UsageError(f"{flag} {path!r} is a folder; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path!r}: the folder {folder!r} does not exist; create it or give another file")


def command(main: Main) -> Main:
    """Wrap a command's ``main(argv=None) -> int``: a user's mistake it raises
    (:func:`user_error`) is printed by :func:`fail` and returns :data:`EXIT_USAGE`; anything
    else propagates with its traceback."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except Exception as exc:
            message = user_error(exc, sys.argv[1:] if argv is None else argv)
            if message is None:
                raise
            return fail(message)

    return run


__all__ = [
    "EXIT_USAGE",
    "OPTIONAL_DEPENDENCIES",
    "check_output_file",
    "command",
    "fail",
    "missing_dependency",
    "one_line",
    "user_error",
]
