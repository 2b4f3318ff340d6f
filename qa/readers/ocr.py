"""OCR: the text lines of a page image, read by RapidOCR (Apache-2.0; its wheel carries the
Chinese/English PP-OCR models and runs them on onnxruntime, offline). About 9 s a page on two cores."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .extract import join_two


@lru_cache(maxsize=1)
def _engine() -> Any:
    """The RapidOCR engine, made once (loading its three models takes about a second)."""
    from rapidocr import RapidOCR

    return RapidOCR(params={"Global.log_level": "error"})


def ocr_lines(image: Any) -> list[str]:
    """Text lines of ``image`` (a PIL image or an (h, w, 3) uint8 array), top to bottom.

    RapidOCR finds text boxes; boxes whose vertical centres lie within half a box height of a
    line's are one line, read left to right (joined without a space between CJK characters).
    """
    result = _engine()(image)
    if not result.txts:
        return []
    boxes = []
    for box, text in zip(result.boxes, result.txts):
        ys, xs = [float(p[1]) for p in box], [float(p[0]) for p in box]
        boxes.append(((min(ys) + max(ys)) / 2, max(ys) - min(ys), min(xs), text))
    boxes.sort()
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        if lines and abs(box[0] - lines[-1][0][0]) <= 0.5 * max(box[1], lines[-1][0][1]):
            lines[-1].append(box)
        else:
            lines.append([box])
    out = []
    for line in lines:
        text = ""
        for _, _, _, part in sorted(line, key=lambda b: b[2]):
            text = join_two(text, part.strip())
        out.append(text)
    return out
