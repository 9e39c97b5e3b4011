"""Turn an OpenDSS master file into one self-contained script, in memory.

OpenDSS's ``compile`` changes the process working directory and the reference project
writes a ``loadshape.dss`` next to the circuit before every episode. We do neither: the
master file is read here, every ``redirect``/``compile`` is inlined (paths resolved
relative to the file that names them), ``BusCoords`` gets an absolute path, and files that
the reference generates at run time are replaced by placeholder load shapes. The result is
run through ``Text.Commands`` in one call; nothing is written anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from vvc_batch.errors import DataNotFoundError

_FILE_CMDS = ("redirect", "compile")
_PATH_CMDS = ("buscoords", "latlongcoords")
_SHAPE_REF_RE = re.compile(r"\b(?:daily|yearly|duty)\s*=\s*([^\s!]+)", re.IGNORECASE)
_SHAPE_DEF_RE = re.compile(r"\bnew\s+(?:object\s*=\s*)?loadshape\.([^\s!]+)", re.IGNORECASE)
_PLACEHOLDER = "!__vvc_batch_generated_loadshapes__"


def _strip_comment(line: str) -> str:
    """The command part of a line, without a trailing ``!`` or ``//`` comment."""
    for mark in ("!", "//"):
        pos = line.find(mark)
        if pos >= 0:
            line = line[:pos]
    return line.strip()


def _file_argument(command: str) -> str:
    """The file argument of ``redirect x`` / ``buscoords "x y"`` (quotes removed)."""
    rest = command.split(None, 1)[1].strip() if len(command.split(None, 1)) > 1 else ""
    if rest[:1] in ("'", '"', "(", "["):
        close = {"'": "'", '"': '"', "(": ")", "[": "]"}[rest[0]]
        end = rest.find(close, 1)
        return rest[1:end] if end > 0 else rest[1:]
    return rest.split()[0] if rest else ""


def _read_text(path: Path) -> str:
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _inline(path: Path, generated: set[str], out: list[str], depth: int = 0) -> None:
    if depth > 32:
        raise DataNotFoundError(f"redirect nesting deeper than 32 levels at {str(path)!r}")
    base = path.parent
    in_block_comment = False
    for raw in _read_text(path).splitlines():
        line = raw.rstrip("\r")
        stripped = line.strip()
        if in_block_comment:
            out.append(line)
            if "*/" in stripped:
                in_block_comment = False
            continue
        if stripped.startswith("/*"):
            out.append(line)
            in_block_comment = "*/" not in stripped[2:]
            continue
        command = _strip_comment(stripped)
        word = command.split(None, 1)[0].lower() if command else ""
        if word in _FILE_CMDS:
            arg = _file_argument(command)
            if Path(arg).name.lower() in generated:
                out.append(_PLACEHOLDER)
                continue
            target = (base / arg).resolve()
            if not target.is_file():
                raise DataNotFoundError(
                    f"{str(path)!r} redirects to {arg!r}, which does not exist "
                    f"(looked for {str(target)!r})"
                )
            _inline(target, generated, out, depth + 1)
            continue
        if word in _PATH_CMDS:
            arg = _file_argument(command)
            target = (base / arg).resolve()
            if target.is_file():
                out.append(f'{word} "{target}"')
            # a missing coordinates file only costs the pictures; leave it out
            continue
        out.append(line)


def build_script(master: str | os.PathLike[str], generated_files: Iterable[str] = ("loadshape.dss",)) -> str:
    """One OpenDSS script equivalent to compiling ``master``, with nothing left to read but data.

    Args:
        master: path of the master ``.dss`` file.
        generated_files: names of files the reference writes at run time (``loadshape.dss``);
            a redirect to one of them becomes placeholder definitions (one point, value 1) of
            every load shape the script references but never defines.

    Raises:
        DataNotFoundError: the master file or a redirected file is missing.
    """
    master = Path(master)
    if not master.is_file():
        raise DataNotFoundError(f"OpenDSS master file not found: {str(master)!r}")
    lines: list[str] = []
    _inline(master.resolve(), {g.lower() for g in generated_files}, lines)
    text = "\n".join(lines)
    referenced = {m.lower() for m in _SHAPE_REF_RE.findall(text)}
    defined = {m.lower() for m in _SHAPE_DEF_RE.findall(text)}
    missing = sorted(referenced - defined)
    placeholder = "\n".join(f"New Loadshape.{n} npts=1 interval=1 mult=[1]" for n in missing)
    if _PLACEHOLDER in text:
        return text.replace(_PLACEHOLDER, placeholder, 1).replace(_PLACEHOLDER, "")
    if not missing:
        return text
    # no generated file is named: define the missing shapes just before the first load
    out = text.split("\n")
    for i, line in enumerate(out):
        if re.match(r"\s*new\s+(object\s*=\s*)?load\.", line, re.IGNORECASE):
            out.insert(i, placeholder)
            return "\n".join(out)
    return text + "\n" + placeholder

__all__ = ["build_script"]
