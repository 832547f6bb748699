"""Numbers with their nouns, as English has them: '1 entry', '2 entries', '1 file the same'.

In the core, so the library's own messages (a reproduction's verdict, publish's steps) read
as the command line's do; :func:`gefreg.cli.ui.count` is this function.
"""

from __future__ import annotations


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 entry', '2 entries', '0 findings'."""
    if number == 1:
        return f"1 {noun}"
    if plural is None:
        plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{number} {plural}"
