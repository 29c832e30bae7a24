"""Flags every subcommand spells the same way, and the checks behind them.

    --table T          a table to read: directory, shipped name or 'default'
    --out DIR          where outputs go; refuses a folder holding results of other settings
    --force            ... unless given: then the earlier results are removed first
    --device D         one torch device (cpu, cuda, cuda:1); --devices D1,D2 where several fit
    --seed S           documented per command as what it seeds
    --bf16/--no-bf16   one spelling for on/off switches (argparse.BooleanOptionalAction)
    --no-progress      no progress bars or log lines
    --augment OPS      train-time augmentation: `none` or ops `crop,flip,cutout:16`

Counts go through `positive_int` / `nonneg_int` (argparse types whose message names the bad
value), so `--repeats 0` fails before anything runs. `check_device` turns a CUDA device on a
machine without one into a UserError that says how to run on the CPU. `prepare_out` guards
output folders: each records the settings that made it (`lcsim-run.json`); a re-run with the
same settings resumes, other settings are refused (naming what would be replaced) unless
`force`, which removes the listed results first.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import json
import os
import platform
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lcsim.errors import UserError

__all__ = [
    "OUT_MARKER",
    "add_augment",    "add_device",
    "add_devices",
    "add_out",
    "add_progress",
    "add_seed",
    "add_switch",
    "add_table",
    "check_device",
    "check_devices",
    "nonneg_int",
    "positive_int",
    "prepare_out",
    "take_positional_table",
    "names_table",
    "release_outs",
]

OUT_MARKER = "lcsim-run.json"
OUT_LOCK = ".lcsim-run.lock"  # held (fcntl) by the command writing the folder
_HELD: dict[str, int] = {}  # folder -> lock file descriptor, held by this process


def add_table(p: argparse.ArgumentParser, *, default: str | None = "default",
              required: bool | None = None, help: str = "", positional: bool = False) -> None:
    """--table; required when there is no default, unless `required=False` (optional).

    `positional`: the table may also be given as the one positional TABLE (`lcsim table info
    default`, where the command already names the noun); `take_positional_table` checks it
    after parsing."""
    shown = f" (default: {default})" if default else ""
    needed = default is None if required is None else required
    text = (help or "table directory, shipped table name, or 'default'") + shown
    p.add_argument("--table", default=default, required=needed and not positional, help=text)
    if positional:
        p.add_argument("table_arg", nargs="?", default=None, metavar="TABLE",
                       help="the same as --table")
        p.set_defaults(table_required=needed)


def names_table(argv: list[str]) -> bool:
    """Does the command line name a table with --table (or --table=...)?"""
    return any(a == "--table" or a.startswith("--table=") for a in argv)


def take_positional_table(args: argparse.Namespace, argv: list[str]) -> str | None:
    """Move a positional TABLE into args.table; the error message when the table is given twice
    or not at all (where required), else None."""
    pos = vars(args).pop("table_arg", None)
    required = vars(args).pop("table_required", False)
    if pos is not None:
        if names_table(argv):
            return f"the table is given twice ({pos!r} and --table {args.table!r}); give one"
        args.table = pos
    elif required and args.table is None:
        return "the following arguments are required: TABLE (or --table TABLE)"
    return None


def add_out(p: argparse.ArgumentParser, *, required: bool = False, help: str = "") -> None:
    p.add_argument("--out", required=required, default=None,
                   help=help or "output directory (re-running the same command resumes)")
    p.add_argument("--force", action="store_true",
                   help="replace the results of other settings found in --out")


def add_device(p: argparse.ArgumentParser, *, default: str | None = "cpu") -> None:
    p.add_argument("--device", default=default,
                   help="torch device: cpu, cuda, cuda:1, ..." + (f" (default {default})"
                                                                 if default else ""))


def add_devices(p: argparse.ArgumentParser, *, default: str = "cpu", help: str = "") -> None:
    p.add_argument("--devices", type=_device_list, default=default,
                   help=(help or "comma-separated torch devices, e.g. cuda:0,cuda:1")
                   + f" (default {default})")


def _device_list(text: str) -> tuple[str, ...]:
    devs = tuple(d.strip() for d in text.split(",") if d.strip())
    if not devs:
        raise argparse.ArgumentTypeError(f"expected comma-separated devices, got {text!r}")
    return devs


def add_seed(p: argparse.ArgumentParser, what: str, *, default: int | None = 0) -> None:
    shown = "" if default is None else f" (default {default})"
    p.add_argument("--seed", type=nonneg_int, default=default, help=f"seeds {what}{shown}")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")


def add_augment(p: argparse.ArgumentParser, *, default: str = "none", help: str = "") -> None:
    """--augment: `none` or comma-separated ops (crop, flip, cutout[:N]) -> a tuple of ops."""
    p.add_argument("--augment", type=_augment_ops, default=_augment_ops(default),
                   metavar="OPS",
                   help=(help or "train-time augmentation: none, or comma-separated ops from "
                                 "crop, flip, cutout, cutout:N (N x N squares)")
                   + f" (default {default})")


def _augment_ops(text: str) -> tuple[str, ...]:
    from lcsim.pregen.augment import parse_augment  # no torch at import

    try:
        return parse_augment(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_switch(p: argparse.ArgumentParser, name: str, *, default: bool, help: str) -> None:
    """`--name/--no-name` (one spelling for every on/off flag); `help` says what 'on' does."""
    p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=default,
                   help=f"{help} (default: {'on' if default else 'off'})")


def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {v}")
        return v

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in some messages
    return parse


positive_int = _int_at_least(1, "an integer >= 1")
nonneg_int = _int_at_least(0, "an integer >= 0")


def check_device(device: str, flag: str = "--device") -> str:
    """`device` if torch can use it here, else a UserError naming what is missing."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"{flag} {device!r} is not a torch device ({e}); use cpu, cuda or "
                        "cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{flag} {device}: no CUDA device is visible on this machine; "
                            f"run on the CPU with {flag} cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise UserError(f"{flag} {device}: this machine has {n} CUDA device(s) "
                            f"(cuda:0..cuda:{n - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{flag} {device}: MPS is not available; use {flag} cpu")
    return device


def check_devices(devices: Iterable[str]) -> tuple[str, ...]:
    return tuple(check_device(d, "--devices") for d in devices)


def prepare_out(out: str | Path, settings: dict[str, Any], *, force: bool,
                results: Iterable[str] = (), resume: bool = True) -> Path:
    """Create or reuse output folder `out` for a run with `settings` (JSON-able).

    `results`: the files and folders the command writes, as names or glob patterns relative
    to `out` ("summary.csv", "traces", "replay_*.png"). Same settings as recorded: reused (the
    run resumes), or with `resume=False` (a command that rewrites everything) its earlier
    results are removed first. Results of other settings, or results with no record: refused
    with a UserError listing what would be replaced, unless `force`, which first removes
    those results and the record. A folder recorded by another command (the "command" key of
    `settings`) is refused unless `force`. Files the command does not write are never touched.
    The folder stays locked by this process until `release_outs()`: another command on it
    meanwhile is refused.
    """
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise UserError(f"--out {d} is a file; give a directory")
    d.mkdir(parents=True, exist_ok=True)
    _lock(d)
    marker = d / OUT_MARKER
    doc = json.loads(json.dumps(settings, sort_keys=True, default=str))
    old: Any = None
    if marker.exists():
        try:
            old = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
    present = _present(d, results)
    other = old.get("command") if isinstance(old, dict) else None
    if other and other != doc.get("command") and not force:  # its results are not ours
        raise UserError(f"--out {d} holds the results of `{other}`; give this command its "
                        "own --out")
    if not (marker.exists() and old == doc):
        if present and not force:
            what = ", ".join(present)
            diff = _diff(old if marker.exists() else None, doc)
            raise UserError(f"--out {d} holds results of other settings ({diff}): {what}; "
                            "use a new --out, or --force to replace them")
    elif resume:
        return d
    for r in present:
        p = d / r
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    tmp.replace(marker)
    return d


def _lock(d: Path) -> None:
    """Hold DIR/.lcsim-run.lock until `release_outs` (the root command calls it when the
    command ends; the OS releases it when the process dies): two commands writing one
    folder at once would mix their results."""
    key = str(d.resolve())
    if key in _HELD:
        return
    fd = os.open(d / OUT_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(f"--out {d} is in use by another running lcsim command ({holder}); "
                            "wait for it to finish, or use another --out") from None
        except OSError as e:  # ENOLCK, EOPNOTSUPP: a filesystem without locks
            raise UserError(f"--out {d}: cannot lock it ({e.strerror}); lcsim locks an output "
                            "folder so that two commands never mix their results: use a "
                            "folder on a local disk") from None
        started = _dt.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}, started {started}".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = fd


def release_outs() -> None:
    """Release the output folders this process holds (see `prepare_out`)."""
    while _HELD:
        os.close(_HELD.popitem()[1])


def _present(d: Path, results: Iterable[str]) -> list[str]:
    if not d.is_dir():
        return []
    found = {p.relative_to(d).as_posix() for r in results for p in d.glob(r)}
    return sorted(found - {OUT_MARKER})


def _diff(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "no record of the settings that made them"
    changes = _changes(old, new, "")
    return "; ".join(changes[:3]) + ("; ..." if len(changes) > 3 else "")


def _changes(a: Any, b: Any, path: str) -> list[str]:
    """'path: old -> new' for what differs, descending into dicts and same-length lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [c for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
                for c in _changes(a.get(k), b.get(k), f"{path}.{k}" if path else k)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} -> {len(b)} entries"]
        return [c for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y
                for c in _changes(x, y, f"{path}[{i}]")]
    return [f"{path}: {_short(a)} -> {_short(b)}"]


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n - 3] + "..."
