"""The other-domain suite's database: the bookshop of ``tests/other_domain.py``, built fast.

``build_bookshop`` inserts row by row, which is slow on a disk-backed file (tens of seconds:
every insert reaches the disk); here it is built in a scratch folder in memory (``/dev/shm``
when there is one) and copied into place, with its semantic notes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _build_bookshop():  # noqa: ANN202 - the function from tests/other_domain.py
    spec = importlib.util.spec_from_file_location("_eval_other_domain",
                                                  HERE.parent / "other_domain.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_bookshop


def build(path: Path, *, with_notes: bool = True) -> Path:
    """Write the bookshop database to ``path`` (notes beside it); return the notes path."""
    path = Path(path)
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    target_notes = path.with_name(path.name + ".semantic.yaml")
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        built = Path(tmp) / path.name
        notes = _build_bookshop()(built, with_notes=with_notes)
        shutil.copyfile(built, path)
        if notes.exists():
            shutil.copyfile(notes, target_notes)
        elif target_notes.exists():
            target_notes.unlink()
    return target_notes
