"""Where a command's rows go (``classify``, ``evaluate --per-line``): the format from --format or the
--output file's extension, a check that --output can be written before any work, and the write itself
(whole and atomic to a file, else stdout)."""

from __future__ import annotations

import sys
from typing import Optional

OUTPUT_FORMATS = ("csv", "tsv", "jsonl", "table")


def output_format(fmt: Optional[str], output: Optional[str], input_format: str) -> str:
    """--format, else the one --output's extension names, else the input's (or csv)."""
    from ..data.tables import EXTENSIONS
    from ..errors import TextRNNError

    if fmt is None and output and output != "-":
        fmt = EXTENSIONS.get("." + output.rsplit(".", 1)[-1].lower() if "." in output else "")
        if fmt not in OUTPUT_FORMATS:  # e.g. .txt: text is an input format only
            fmt = None
    if fmt is None:
        fmt = input_format if input_format in ("csv", "tsv", "jsonl") else "csv"
    if fmt not in OUTPUT_FORMATS:
        raise TextRNNError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    return fmt


def check_output_path(output: Optional[str]) -> None:
    """Fail before any work if OUT cannot be written (the file itself is written at the end)."""
    import os
    from pathlib import Path

    from ..errors import TextRNNError

    if not output or output == "-":
        return
    path = Path(output)
    if path.is_dir():
        raise TextRNNError(f"--output {output}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TextRNNError(f"--output {output}: folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise TextRNNError(f"--output {output}: not writable; choose another path")


def write_output(rendered: str, output: Optional[str]) -> None:
    """To --output (whole, atomically) or to stdout."""
    from ..errors import TextRNNError

    if output and output != "-":
        from ..files import atomic_write

        try:
            atomic_write(output, rendered)
        except OSError as e:
            raise TextRNNError(f"--output {output}: cannot write it ({e.strerror or e}); "
                               "free disk space or choose another --output") from None
    else:
        sys.stdout.write(rendered)
        sys.stdout.flush()
