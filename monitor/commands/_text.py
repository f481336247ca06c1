"""Text from outside (a name a device in radio range advertises, a note a patient typed, a
tag a gateway sent) shown in a rich table as what it is: never read as rich markup
(``[/]`` would stop the command with a MarkupError, ``[link=…]`` make a hyperlink), and
without control characters (an escape sequence would reach the terminal)."""

from __future__ import annotations

import re

from rich.text import Text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but the line break and tab."""


def plain(text: str) -> Text:
    """``text`` as a rich cell: plain, control characters replaced by U+FFFD."""
    return Text(_CONTROL.sub("\N{REPLACEMENT CHARACTER}", text))
