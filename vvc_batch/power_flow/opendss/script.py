"""Load an OpenDSS master file the way OpenDSS's own ``compile`` would, minus its side effects.

What the loader does
    :func:`read_master` reads the master file and every file it ``redirect``\\s or
    ``compile``\\s (inlined in place, paths relative to the folder of the file naming them, as
    OpenDSS resolves them) and returns a :class:`MasterScript`: a sequence of
    :class:`Chunk`\\s, each a run of command lines that OpenDSS must read with one folder as
    its current folder, plus a source map (file and line number of every command line).
    :func:`compile_script` runs the chunks in a DSS C-API context, setting ``DataPath`` to the
    chunk's folder first. With ``AllowChangeDir`` off, OpenDSS resolves every input file that
    a command names (load shapes' ``mult=(file=..)``, ``csvfile=``, ``sngfile=``,
    ``dblfile=``, XYCurve/TShape/PriceShape/GrowthShape/Spectrum files) against that folder,
    with ``\\`` read as ``/``; so a file named relative to the script naming it is found, as
    with OpenDSS's own ``compile``, and the process working directory never changes.

    Files are read as bytes: NUL bytes are dropped (DSS C-API takes the text as a C string, so a
    NUL would silently end it), lines may end in CRLF, LF or a lone CR, ``/* ... */`` blocks
    (from a line starting with ``/*`` to the next line containing ``*/``) are left out.
    Commands may be abbreviated and in any letter case, as OpenDSS allows; ``~``/``more``
    lines go through unchanged (they edit the active object, as in OpenDSS).

What it leaves out, and why
    An environment needs the circuit, not what a study script does with it. Commands with side
    effects (files written, windows, external programs) or that are the environment's job are
    dropped: solving (``solve``, ``init``, ``buildy``, ``next``, ``_solve...``), reports and
    pictures (``show``, ``plot``, ``export``, ``visualize``, ``save``, ``dump``, ``summary``,
    ``voltages`` and the other report commands), editors and interactive ones (``fileedit``,
    ``formedit``, ``help``, ``panel``, ``about``, ``?``, ``get``), ``closedi``, ``sample``,
    ``cleanup``, ``finishtimestep``, ``estimate``, ``cvrtloadshapes``, ``obfuscate`` and
    ``DOScmd`` (never run). ``cd`` and ``set datapath=`` are followed (later relative names
    resolve against the new folder, as in OpenDSS) but not run. In ``set`` lines, the options
    that run or report a solution are dropped (mode, number, hour, sec, time, year, stepsize,
    controlmode, tolerance, maxiterations, maxcontroliter, miniterations, algorithm, frequency,
    harmonics, random, demand/DI/log/report options, casename, editor, ...): the engine sets
    its own afterwards. Options that shape the circuit (voltagebases, defaultbasefrequency,
    loadmult, loadmodel, earthmodel, ...) are kept, and so are ``calcvoltagebases``,
    ``allocateloads``, ``reduce``, ``batchedit`` and all object definitions, monitors and
    energy meters included (:func:`compile_script` disables those afterwards: they do not
    change the power flow but cost time at every solve and may write files).
    ``buscoords``/``latlongcoords``/``giscoords`` get an absolute path; a missing coordinates
    file is left out (it only costs pictures). Properties that make OpenDSS write files
    (``debugtrace=``, which opens a trace file per RegControl/Generator/Storage/PVSystem in the
    data folder; ``action=save...`` of load shapes and monitors) are cut from their lines.

    The PowerGym reference writes a ``loadshape.dss`` next to its circuits at run time; a
    redirect to such a generated file becomes placeholder shapes (one point, value 1) for every
    load shape the circuit references but never defines.

Errors
    A missing redirected file raises :class:`~vvc_batch.errors.DataNotFoundError` naming the
    file that redirects and its line; what OpenDSS refuses raises
    :class:`~vvc_batch.errors.EngineError` naming the user's file and line (OpenDSS reports the
    line inside the chunk; the source map translates it) with OpenDSS's message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from vvc_batch.errors import DataNotFoundError, EngineError

# OpenDSS's executive commands, in its order: an abbreviation means the first one it begins
# (an exact name wins), so the order decides what "s" or "sol" is.
_COMMANDS = (
    "new edit more m ~ select save show solve enable disable plot reset compile set dump open "
    "close // redirect help quit ? next panel sample clear about calcvoltagebases setkvbase "
    "buildy get init export fileedit voltages currents powers seqvoltages seqcurrents seqpowers "
    "losses phaselosses cktlosses allocateloads formedit totals capacity classes userclasses zsc "
    "zsc10 zscrefresh ysc puvoltages varvalues varnames buscoords makebuslist makeposseq reduce "
    "interpolate alignfile top rotate vdiff summary distribute di_plot comparecases yearlycurves "
    "cd visualize closedi doscmd estimate reconductor _initsnap _solvenocontrol _samplecontrols "
    "_docontrolactions _showcontrolqueue _solvedirect _solvepflow addbusmarker uuids "
    "setloadandgenkv cvrtloadshapes nodediff rephase setbusxy updatestorage obfuscate "
    "latlongcoords batchedit pstcalc variable reprocessbuses clearbusmarkers relcalc var cleanup "
    "finishtimestep nodelist connect disconnect remove calcincmatrix calcincmatrix_o "
    "refine_buslevels calclaplacian exportoverloads exportvviolations zsc012 allpceatbus "
    "allpdeatbus totalpowers giscoords clearall comhelp newactor wait solveall abort clone"
).split()
_DROPPED_COMMANDS = frozenset((
    "save show solve plot dump help quit ? next panel sample about buildy get init export fileedit "
    "voltages currents powers seqvoltages seqcurrents seqpowers losses phaselosses cktlosses "
    "formedit totals capacity classes userclasses zsc zsc10 zscrefresh ysc puvoltages varvalues "
    "varnames alignfile top vdiff summary di_plot comparecases yearlycurves visualize closedi "
    "doscmd estimate _initsnap _solvenocontrol _samplecontrols _docontrolactions "
    "_showcontrolqueue _solvedirect _solvepflow addbusmarker uuids cvrtloadshapes nodediff "
    "updatestorage obfuscate pstcalc clearbusmarkers relcalc cleanup finishtimestep nodelist "
    "connect disconnect calcincmatrix calcincmatrix_o refine_buslevels calclaplacian "
    "exportoverloads exportvviolations zsc012 allpceatbus allpdeatbus totalpowers comhelp "
    "newactor wait solveall abort clone"
).split())
_COORD_COMMANDS = frozenset(("buscoords", "latlongcoords", "giscoords"))
# OpenDSS's ``set`` options, in its order (abbreviations resolve as for commands)
_OPTIONS = (
    "type element hour sec year frequency stepsize mode random number time class object circuit "
    "editor tolerance maxiterations h loadmodel loadmult normvminpu normvmaxpu emergvminpu "
    "emergvmaxpu %mean %stddev ldcurve %growth genkw genpf capkvar addtype allowduplicates "
    "zonelock ueweight lossweight ueregs lossregs voltagebases algorithm trapezoidal autobuslist "
    "controlmode tracecontrol genmult defaultdaily defaultyearly allocationfactors cktmodel "
    "pricesignal pricecurve terminal basefrequency harmonics maxcontroliter bus datapath keeplist "
    "reduceoption demandinterval %normal diverbose casename markercode nodewidth log recorder "
    "overloadreport voltexceptionreport cfactors showexport numallociterations "
    "defaultbasefrequency markswitches switchmarkercode daisysize marktransformers "
    "transmarkercode transmarkersize loadshapeclass earthmodel querylog markcapacitors "
    "markregulators markpvsystems markstorage capmarkercode regmarkercode pvmarkercode "
    "storemarkercode capmarkersize regmarkersize pvmarkersize storemarkersize neglectloady "
    "markfuses fusemarkercode fusemarkersize markreclosers reclosermarkercode reclosermarkersize "
    "registryupdate markrelays relaymarkercode relaymarkersize processtime totaltime steptime "
    "sampleenergymeters miniterations dssvisualizationtool keepload zmag seasonrating "
    "seasonsignal linetypes eventlogdefault longlinecorrection showreports numcpus numcores "
    "numactors activeactor cpu actorprogress parallel concatenatereports numanodes"
).split()
_DROPPED_OPTIONS = frozenset((
    "hour sec year frequency stepsize mode random number time editor tolerance maxiterations h "
    "algorithm trapezoidal controlmode tracecontrol harmonics maxcontroliter datapath "
    "demandinterval diverbose casename log recorder overloadreport voltexceptionreport "
    "showexport querylog registryupdate processtime totaltime steptime sampleenergymeters "
    "miniterations dssvisualizationtool eventlogdefault showreports numcpus numcores numactors "
    "activeactor cpu actorprogress parallel concatenatereports numanodes"
).split())
_OPEN_QUOTES = {'"': '"', "'": "'", "(": ")", "[": "]", "{": "}"}
_SEPARATORS = " \t,"
_SHAPE_REF_RE = re.compile(r"\b(?:daily|yearly|duty)\s*=\s*([^\s!]+)", re.IGNORECASE)
_SHAPE_DEF_RE = re.compile(r"\bnew\s+(?:object\s*=\s*)?loadshape\.([^\s!]+)", re.IGNORECASE)
_LOAD_DEF_RE = re.compile(r"\s*new\s+(?:object\s*=\s*)?load\.", re.IGNORECASE)
# properties that make OpenDSS write files (trace files, saved shapes/monitors): left out;
# ``debugtrace`` also abbreviated, as OpenDSS accepts it (``deb=yes``; no other property of
# the classes that have it begins with "deb")
_WRITER_RE = re.compile(
    r"""(?<![\w.%])(?:deb(?:u(?:g(?:t(?:r(?:a(?:c(?:e)?)?)?)?)?)?)?\s*=\s*(?:"[^"]*"|'[^']*'|[^\s,!]+)"""
    r"""|action\s*=\s*["']?save\w*["']?)""",
    re.IGNORECASE,
)
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_BLOCK_LINE_RE = re.compile(r'\[file: "[^"]*", line: (\d+)\]\s*$')
_MAX_DEPTH = 32


def _resolve(word: str, names: tuple[str, ...] | list[str]) -> str:
    """OpenDSS's name of ``word`` (lower case) in ``names``: exact, else the first it begins."""
    if word in names:
        return word
    for name in names:
        if name.startswith(word):
            return name
    return ""


# ---------------------------------------------------------------------- tokens
def _token(text: str, pos: int) -> tuple[str, int]:
    """The token starting at ``pos`` (quotes/brackets kept) and the position after it."""
    close = _OPEN_QUOTES.get(text[pos])
    if close is not None:
        end = text.find(close, pos + 1)
        end = len(text) if end < 0 else end + 1
        return text[pos:end], end
    end = pos
    while end < len(text) and text[end] not in _SEPARATORS and text[end] != "=":
        end += 1
    return text[pos:end], end


def _params(text: str) -> list[tuple[str, str]]:
    """OpenDSS's parameters of a command's argument text: (name or "", raw value), comments cut."""
    out: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _SEPARATORS:
            pos += 1
        if pos >= len(text) or text[pos] == "!" or text.startswith("//", pos):
            return out
        tok, pos = _token(text, pos)
        probe = pos
        while probe < len(text) and text[probe] in " \t":
            probe += 1
        if probe < len(text) and text[probe] == "=":
            pos = probe + 1
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos >= len(text):
                out.append((tok, ""))
                return out
            value, pos = _token(text, pos)
            out.append((tok, value))
        elif not tok:  # a stray "=": skip it
            pos += 1
        else:
            out.append(("", tok))


def _unquote(value: str) -> str:
    if value[:1] in _OPEN_QUOTES:
        inner = value[1:]
        return inner[:-1] if inner.endswith(_OPEN_QUOTES[value[0]]) else inner
    return value


def _is_comment(line: str) -> bool:
    text = line.strip()
    return not text or text[0] == "!" or text.startswith("//")


def _split_command(line: str) -> tuple[str, str]:
    """(OpenDSS command name or "", argument text) of one line; "" for comments, blank lines
    and property edits (``name=value``) that name no command."""
    if _is_comment(line):
        return "", ""
    text = line.strip()
    if text[0] in _OPEN_QUOTES:
        return "", text
    word, end = _token(text, 0)
    rest = text[end:]
    if rest.lstrip(" \t").startswith("="):
        return "", text
    if word.startswith("~"):  # "~name=value": OpenDSS's More
        return "~", text[1:]
    return _resolve(word.lower(), _COMMANDS), rest


# ---------------------------------------------------------------------- script
@dataclass
class Chunk:
    """Command lines that OpenDSS reads with ``folder`` as its current folder.

    ``sources[i]`` is the (file, 1-based line number) that ``lines[i]`` comes from."""

    folder: Path
    lines: list[str] = field(default_factory=list)
    sources: list[tuple[Path, int]] = field(default_factory=list)


@dataclass
class MasterScript:
    """A master file and everything it redirects to, as OpenDSS would read it;
    ``placeholder_shapes``: the load shapes the circuit names but never defines, which the
    loader defined as one point of value 1 (lower case)."""

    master: Path
    chunks: list[Chunk]
    placeholder_shapes: tuple[str, ...] = ()

    @property
    def num_lines(self) -> int:
        """Command lines in all chunks."""
        return sum(len(c.lines) for c in self.chunks)

    def text(self) -> str:
        """All command lines, one string (for reading; running it ignores the folders)."""
        return "\n".join(line for c in self.chunks for line in c.lines)


@dataclass
class _Reader:
    generated: set[str]
    chunks: list[Chunk] = field(default_factory=list)
    raw_texts: list[str] = field(default_factory=list)
    placeholders: list[tuple[Chunk, int]] = field(default_factory=list)

    def emit(self, folder: Path, line: str, source: tuple[Path, int]) -> None:
        if not self.chunks or self.chunks[-1].folder != folder:
            self.chunks.append(Chunk(folder))
        chunk = self.chunks[-1]
        chunk.lines.append(line)
        chunk.sources.append(source)

    def read(self, path: Path, depth: int, caller: str) -> Path:
        """Inline ``path``; returns the folder current after it (OpenDSS's folder at its end)."""
        if depth > _MAX_DEPTH:
            raise DataNotFoundError(f"{caller}: redirects nested deeper than {_MAX_DEPTH} levels")
        with open(path, "rb") as fh:
            data = fh.read().replace(b"\x00", b"")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        self.raw_texts.append(text)
        folder = path.parent
        in_block = False
        for num, line in enumerate(_LINE_BREAK_RE.split(text), start=1):
            where = f"{str(path)!r}, line {num}"
            if in_block or line.lstrip().startswith("/*"):
                in_block = "*/" not in (line if in_block else line.lstrip()[2:])
                continue
            name, rest = _split_command(line)
            if name in ("redirect", "compile"):
                target = self._target(folder, rest, where)
                if target is None:  # a generated file: placeholder shapes go here
                    self.emit(folder, "", (path, num))
                    self.placeholders.append((self.chunks[-1], len(self.chunks[-1].lines) - 1))
                    continue
                after = self.read(target, depth + 1, where)
                if name == "compile":
                    folder = after
            elif name == "cd":
                folder = self._folder(folder, rest, where, strict=True) or folder
            elif name == "set":
                line, folder = self._set_line(folder, rest, where)
                if line:
                    self.emit(folder, line, (path, num))
            elif name in _COORD_COMMANDS:
                params = _params(rest)
                coords = _existing(folder, _unquote(params[0][1])) if params else None
                if coords is not None:
                    extra = " ".join(f"{n}={v}" if n else v for n, v in params[1:])
                    self.emit(folder, f"{name} {_quote(coords)} {extra}".rstrip(), (path, num))
            elif name not in _DROPPED_COMMANDS and not _is_comment(line):
                self.emit(folder, _WRITER_RE.sub("", line), (path, num))
        return folder

    def _target(self, folder: Path, rest: str, where: str) -> Path | None:
        params = _params(rest)
        name = _unquote(params[0][1]) if params else ""
        if not name:
            raise DataNotFoundError(f"{where}: redirect/compile names no file")
        if _windows_name(name).lower() in self.generated:
            return None
        target = _existing(folder, name)
        if target is None and "." not in Path(_windows_name(name)).name:
            target = _existing(folder, name + ".dss")
        if target is None or not target.is_file():
            raise DataNotFoundError(
                f"{where} redirects to {name!r}, which does not exist "
                f"(looked for {str(folder / name.replace(chr(92), '/'))!r})"
            )
        return target

    @staticmethod
    def _folder(folder: Path, rest: str, where: str, strict: bool) -> Path | None:
        params = _params(rest)
        name = _unquote(params[0][1]) if params else ""
        target = _existing(folder, name) if name else None
        if target is None or not target.is_dir():
            if strict:
                raise DataNotFoundError(f"{where}: cd to {name!r}, which is not a folder")
            return None
        return target

    def _set_line(self, folder: Path, rest: str, where: str) -> tuple[str, Path]:
        """The ``set`` line without the options left out, and the folder after it."""
        kept: list[str] = []
        index = -1
        for name, value in _params(rest):
            if name:
                option = _resolve(name.lower(), _OPTIONS)
                index = _OPTIONS.index(option) if option else -1
            else:
                index += 1
                option = _OPTIONS[index] if 0 <= index < len(_OPTIONS) else ""
            if option == "datapath":  # followed when it exists; never created
                folder = self._folder(folder, value, where, strict=False) or folder
            elif not option:
                kept.append(f"{name}={value}" if name else value)  # OpenDSS reports it
            elif option not in _DROPPED_OPTIONS:
                kept.append(f"{option}={value}")
        return ("set " + " ".join(kept) if kept else ""), folder


def _windows_name(name: str) -> str:
    return name.replace("\\", "/")


def _existing(folder: Path, name: str) -> Path | None:
    """The file or folder ``name`` (relative to ``folder``, ``\\`` allowed) if it exists; a
    relative name differing only in letter case is accepted (feeders are often written on
    Windows, whose file names ignore case)."""
    path = folder / _windows_name(name)
    if path.exists():
        return path.resolve()
    if Path(_windows_name(name)).is_absolute():
        return None
    base = folder
    for part in Path(_windows_name(name)).parts:
        candidate = base / part
        if not candidate.exists():
            try:
                match = [p for p in base.iterdir() if p.name.lower() == part.lower()]
            except OSError:
                return None
            if len(match) != 1:
                return None
            candidate = match[0]
        base = candidate
    return base.resolve()


def _quote(path: Path) -> str:
    text = str(path)
    for left, right in (('"', '"'), ("'", "'"), ("(", ")"), ("[", "]")):
        if left not in text and right not in text:
            return f"{left}{text}{right}"
    raise DataNotFoundError(f"cannot quote the path {text!r} for OpenDSS")


def read_master(
    master: str | os.PathLike[str], generated_files: Iterable[str] = ("loadshape.dss",)
) -> MasterScript:
    """Read ``master`` and everything it redirects to, as OpenDSS's ``compile`` would.

    Args:
        master: path of the master ``.dss`` file.
        generated_files: names of files the reference writes at run time (``loadshape.dss``);
            a redirect to one of them becomes placeholder definitions (one point, value 1) of
            every load shape the script references but never defines.

    Returns:
        the chunks to run with :func:`compile_script` (see the module's docstring for what
        is left out).

    Raises:
        DataNotFoundError: the master file, a redirected file or a ``cd`` folder is missing
            (the message names the file and line that name it).
    """
    master = Path(master)
    if not master.is_file():
        raise DataNotFoundError(f"OpenDSS master file not found: {str(master)!r}")
    master = master.resolve()
    reader = _Reader({g.lower() for g in generated_files})
    reader.read(master, 0, repr(str(master)))
    chunks = reader.chunks or [Chunk(master.parent)]
    raw = "\n".join(reader.raw_texts)
    referenced = {m.lower() for m in _SHAPE_REF_RE.findall(raw)}
    defined = {m.lower() for m in _SHAPE_DEF_RE.findall(raw)}
    shapes = [f"New Loadshape.{n} npts=1 interval=1 mult=[1]" for n in sorted(referenced - defined)]
    spots = reader.placeholders or _first_load(chunks)
    for k, (chunk, i) in reversed(list(enumerate(spots))):
        new = shapes if k == 0 else []
        chunk.lines[i:i + 1] = new
        chunk.sources[i:i + 1] = [chunk.sources[i]] * len(new)
    return MasterScript(master, [c for c in chunks if c.lines] or [Chunk(master.parent)],
                        tuple(sorted(referenced - defined)))


def _first_load(chunks: list[Chunk]) -> list[tuple[Chunk, int]]:
    """Where placeholder shapes go when no generated file is named: before the first load
    (a new line is made there), else after the last line."""
    for chunk in chunks:
        for i, line in enumerate(chunk.lines):
            if _LOAD_DEF_RE.match(line):
                chunk.lines.insert(i, "")
                chunk.sources.insert(i, chunk.sources[i])
                return [(chunk, i)]
    last = chunks[-1]
    last.lines.append("")
    last.sources.append(last.sources[-1] if last.sources else (Path("."), 0))
    return [(last, len(last.lines) - 1)]


# ---------------------------------------------------------------------- running
def compile_script(ctx: Any, script: MasterScript) -> None:
    """Run ``script`` in the DSS C-API context ``ctx`` (which must have ``AllowChangeDir``
    off), each chunk with its folder as OpenDSS's current folder, then disable every Monitor
    and EnergyMeter.

    Raises:
        EngineError: OpenDSS refused a line; the message names the user's file and line.
    """
    for chunk in script.chunks:
        ctx.DataPath = str(chunk.folder)
        try:
            ctx.Text.Commands("\n".join(chunk.lines))
        except Exception as exc:  # DSSException carries OpenDSS's message
            raise EngineError(_refusal(script, chunk, exc)) from exc
    ctx.DataPath = str(script.master.parent)
    circuit = ctx.ActiveCircuit
    if circuit is None:
        return
    for cls, count in (("monitor", circuit.Monitors.Count), ("energymeter", circuit.Meters.Count)):
        if count:
            ctx.Text.Command = f"batchedit {cls}..* enabled=no"


def _refusal(script: MasterScript, chunk: Chunk, exc: Exception) -> str:
    """One line: where OpenDSS refused the script, and its message."""
    args = getattr(exc, "args", ())
    message = str(args[1] if len(args) > 1 else exc)
    match = _BLOCK_LINE_RE.search(message)
    message = " ".join(_BLOCK_LINE_RE.sub("", message).split())
    index = int(match.group(1)) - 1 if match else -1
    if not 0 <= index < len(chunk.lines):
        # some refusals come without OpenDSS's line number but quote the command: find it
        quoted = [i for i, line in enumerate(chunk.lines) if " ".join(line.split()) in message]
        index = quoted[-1] if quoted else -1
    if 0 <= index < len(chunk.lines):
        path, num = chunk.sources[index]
        return (f"OpenDSS refused {str(path)!r}, line {num} ({chunk.lines[index].strip()[:120]!r}) "
                f"while compiling {str(script.master)!r}: {message}")
    files = sorted({str(p) for p, _ in chunk.sources})
    return (f"OpenDSS refused a line of {', '.join(map(repr, files))} while compiling "
            f"{str(script.master)!r}: {message}")


__all__ = ["Chunk", "MasterScript", "compile_script", "read_master"]
