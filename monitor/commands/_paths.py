"""Command-line paths checked before anything is opened for writing."""

from __future__ import annotations

from pathlib import Path

from monitor.errors import ConfigError


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return a.samefile(b)  # hard links and symbolic links too
    return a.resolve() == b.resolve()


def refuse_overwriting(recording: Path, **outputs: Path | None) -> None:
    """A :class:`ConfigError` naming the option when an output is the recording itself
    (opened for writing, it was gone before it was read) or two outputs are one file."""
    given = [(name, path) for name, path in outputs.items() if path is not None]
    for i, (name, path) in enumerate(given):
        flag = "--" + name.replace("_", "-")
        if _same(path, recording):
            raise ConfigError(
                f"{flag} {path} is the same file as the recording {recording}: it would be "
                "overwritten; write the output elsewhere"
            )
        for other_name, other in given[i + 1 :]:
            if _same(path, other):
                raise ConfigError(
                    f"{flag} and --{other_name.replace('_', '-')} name the same file {path}"
                )
