"""Read ``name==version`` pins from a compiled requirements file and compare two sets of them.

Names are normalized as in PEP 503; comments, ``# via`` annotations, options and hash
continuations are ignored, so burrow's, uv's and pip-compile's outputs compare by content only.
"""

from __future__ import annotations

import re
from pathlib import Path

Pins = dict[str, str]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def normalize(name: str) -> str:
    """Return the PEP 503 normalized form of a project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(text: str) -> Pins:
    """Return the ``name -> version`` pins of a requirements file's text."""
    pins: Pins = {}
    for line in text.splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[normalize(match.group(1))] = match.group(2)
    return pins


def read_pins(path: Path) -> Pins | None:
    """Return the pins in ``path``, or ``None`` when the file is missing."""
    try:
        return parse_pins(path.read_text())
    except FileNotFoundError:
        return None


def diff_pins(left: Pins, right: Pins, left_name: str, right_name: str) -> list[str]:
    """Describe every difference between two sets of pins, one line each (empty: equal)."""
    lines = []
    for name in sorted(left.keys() | right.keys()):
        a, b = left.get(name), right.get(name)
        if a == b:
            continue
        if a is None:
            lines.append(f"{name}: only {right_name} pins it ({b})")
        elif b is None:
            lines.append(f"{name}: only {left_name} pins it ({a})")
        else:
            lines.append(f"{name}: {left_name} {a}, {right_name} {b}")
    return lines
