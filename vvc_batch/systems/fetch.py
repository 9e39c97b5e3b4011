"""Get PowerGym's circuit data onto this machine, verified, in one command.

    python -m vvc_batch.data fetch [--systems 13Bus 34Bus ...] [--dest DIR] [--base-url URL]
    python -m vvc_batch.data status [--dest DIR]

``fetch`` downloads the reference project's ``systems/`` folder (``siemens/powergym`` at
the pinned commit) file by file into the data directory: ``--dest``, else
``$VVC_BATCH_DATA``, else the user cache (``~/.cache/vvc_batch`` on Linux, the platform's
cache folder elsewhere), where vvc_batch finds it without any setting afterwards. Each
file is checked against the git blob SHA-1 pinned in ``circuits/powergym.manifest.json``;
it is written to a temporary name, verified, and only then renamed, so nothing partial or
unverified is ever where the library reads. Verified files are skipped on a re-run.
``--base-url URL`` replaces the repository's raw-file address at that commit: the file
``systems/13Bus/Battery.csv`` is fetched from ``URL/systems/13Bus/Battery.csv``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from vvc_batch.commands import command
from vvc_batch.errors import FetchError, UnknownSystemError, UsageError
from vvc_batch.systems.specs import DATA_ENV_VAR, circuits_dir, default_cache_dir, load_system, system_names

RAW_BASE = "https://raw.githubusercontent.com/{repository}/{commit}"
CHUNK = 1 << 16


@dataclass(frozen=True)
class ManifestEntry:
    """One file of the pinned manifest."""

    path: str  # "systems/13Bus/Battery.csv"
    sha1: str  # git blob SHA-1
    size: int | None

    @property
    def local(self) -> str:
        """Path below the data directory ("13Bus/Battery.csv")."""
        return self.path.split("/", 1)[1]


def load_manifest() -> tuple[dict, list[ManifestEntry]]:
    """(header, entries) of the pinned manifest."""
    with (circuits_dir() / "powergym.manifest.json").open("r") as fh:
        data = json.load(fh)
    entries = [ManifestEntry(f["path"], f["sha1"], f.get("size")) for f in data["files"]]
    return data, entries


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a file's bytes: sha1(b"blob <size>\\0" + bytes)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def file_blob_sha1(path: Path) -> str:
    """:func:`git_blob_sha1` of a file, read in chunks."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def default_dest() -> Path:
    """Where ``fetch`` writes: ``$VVC_BATCH_DATA`` if set, else :func:`default_cache_dir`."""
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else default_cache_dir()


def _entries_for(systems: Sequence[str] | None, entries: list[ManifestEntry]) -> list[ManifestEntry]:
    if not systems:
        return entries
    folders = []
    for name in systems:
        if name not in system_names():
            raise FetchError(f"unknown system {name!r}; valid systems are: {', '.join(system_names())}")
        folders.append(load_system(name).folder)
    return [e for e in entries if e.local.split("/", 1)[0] in folders]


def verified(dest: Path, entry: ManifestEntry) -> bool:
    """True if ``entry`` is present under ``dest`` with the pinned checksum."""
    path = dest / entry.local
    return path.is_file() and (entry.size is None or path.stat().st_size == entry.size) \
        and file_blob_sha1(path) == entry.sha1


def _download(url: str, target: Path, entry: ManifestEntry, timeout: float, progress) -> None:
    """Download ``url`` to a temporary file next to ``target``, verify, then rename."""
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                length = resp.headers.get("Content-Length")
                expected = int(length) if length is not None else None
                got = 0
                while True:
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    got += len(chunk)
                    progress(len(chunk))
                if expected is not None and got != expected:
                    raise FetchError(f"{url}: connection closed after {got} of {expected} bytes")
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            if isinstance(exc, FetchError):
                raise
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"{url}: network error: {reason}") from None
        digest = file_blob_sha1(tmp)
        if digest != entry.sha1:
            raise FetchError(
                f"{url}: checksum mismatch (git blob SHA-1 {digest}, pinned {entry.sha1}); the file was discarded"
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(
    systems: Sequence[str] | None = None,
    dest: str | os.PathLike[str] | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
    show_progress: bool = True,
) -> Path:
    """Download and verify the systems' files (default: all four) into ``dest``.

    Returns:
        the data directory (pass it as ``data_dir`` or ``VVC_BATCH_DATA``; the default one
        is found automatically).

    Raises:
        FetchError: a network or HTTP error, or a checksum mismatch (already verified files
            stay; nothing partial is left).
    """
    header, entries = load_manifest()
    todo_all = _entries_for(systems, entries)
    root = Path(dest).expanduser() if dest is not None else default_dest()
    base = (base_url or RAW_BASE.format(**header)).rstrip("/")
    todo = [e for e in todo_all if not verified(root, e)]
    total = sum(e.size or 0 for e in todo)
    from tqdm import tqdm

    with tqdm(total=total, unit="B", unit_scale=True, disable=not show_progress, file=sys.stderr,
              desc=f"0/{len(todo)} files") as bar:
        for n, entry in enumerate(todo, 1):
            _download(f"{base}/{entry.path}", root / entry.local, entry, timeout, bar.update)
            bar.set_description(f"{n}/{len(todo)} files")
    return root


def status(dest: str | os.PathLike[str] | None = None, systems: Iterable[str] | None = None) -> dict:
    """Per system: files verified, present but not matching, missing."""
    _, entries = load_manifest()
    root = Path(dest).expanduser() if dest is not None else default_dest()
    report = {}
    for name in systems or system_names():
        mine = _entries_for([name], entries)
        ok = [e for e in mine if verified(root, e)]
        present = [e for e in mine if (root / e.local).is_file() and e not in ok]
        missing = [e for e in mine if not (root / e.local).exists()]
        report[name] = {"verified": len(ok), "mismatched": [e.local for e in present],
                        "missing": [e.local for e in missing], "files": len(mine)}
    return {"dest": str(root), "systems": report}


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse, before anything is downloaded, system names that are not vvc_batch's and a
    ``--dest`` that exists but is no folder."""
    for name in getattr(args, "systems", None) or ():
        if name not in system_names():
            raise UnknownSystemError(f"unknown system {name!r}; valid systems are: {', '.join(system_names())}")
    if args.dest is not None and Path(args.dest).expanduser().exists() and not Path(args.dest).expanduser().is_dir():
        raise UsageError(f"--dest {args.dest!r} is not a folder; give the folder that holds (or will hold) the "
                         "system folders")


@command
def main(argv: list[str] | None = None) -> int:
    """``fetch`` or ``status``; the exit status (1 when a download fails, 2 and one line on
    stderr on a user's mistake)."""
    p = argparse.ArgumentParser(prog="python -m vvc_batch.data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download and verify the PowerGym systems")
    f.add_argument("--systems", nargs="+", default=None, help=f"systems (default all: {' '.join(system_names())})")
    f.add_argument("--dest", default=None, help="data directory (default $VVC_BATCH_DATA or the user cache)")
    f.add_argument("--base-url", default=None, help="replaces the repository's raw-file address at the pinned commit")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("status", help="list what is present and verified")
    s.add_argument("--dest", default=None)
    args = p.parse_args(argv)
    _check_arguments(args)
    if args.command == "fetch":
        try:
            root = fetch(args.systems, args.dest, args.base_url, args.timeout, show_progress=not args.quiet)
        except FetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"PowerGym systems verified in {root}")
        return 0
    rep = status(args.dest)
    print(f"data directory: {rep['dest']}")
    incomplete = False
    for name, r in rep["systems"].items():
        state = "complete" if r["verified"] == r["files"] else "incomplete"
        incomplete |= state == "incomplete"
        print(f"  {name:<9} {r['verified']:>3}/{r['files']} files verified ({state})")
        for path in r["mismatched"]:
            print(f"      checksum mismatch: {path}")
        for path in r["missing"][:5]:
            print(f"      missing: {path}")
        if len(r["missing"]) > 5:
            print(f"      ... and {len(r['missing']) - 5} more missing")
    return 0

__all__ = [
    "CHUNK",
    "RAW_BASE",
    "default_dest",
    "fetch",
    "file_blob_sha1",
    "git_blob_sha1",
    "load_manifest",
    "main",
    "ManifestEntry",
    "status",
    "verified",
]


if __name__ == "__main__":
    sys.exit(main())
