"""Recreate ``tests/data/seqrec-amazon-beauty-s3rec/`` from the full S3-Rec Beauty files.

The sample is the first ``USERS`` lines of ``Beauty.txt`` (byte-identical; every Beauty user
already has ≥ 5 items, it is a 5-core file) and the ``item2attributes`` entries of the items
those users touch, in the original key order. Item ids keep their original values. Gzip is
written with ``mtime=0`` and no file name, so rerunning gives the same bytes.

Usage: ``python tests/data/make_beauty_sample.py [SOURCE_DIR]`` (default
``<repo>/../shared/data/seqrec-amazon-beauty-s3rec``).
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

USERS = 300
MIN_ITEMS = 5
HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[2] / "shared" / "data" / "seqrec-amazon-beauty-s3rec"
TARGET = HERE / "seqrec-amazon-beauty-s3rec"


def cut(source: Path, target: Path, users: int = USERS) -> tuple[int, int]:
    """Write the sample into ``target``; returns (users, items) kept."""
    with gzip.open(source / "Beauty.txt.gz", "rb") as fh:
        lines = [line for line in fh if len(line.split()) - 1 >= MIN_ITEMS][:users]
    items = {tok.decode() for line in lines for tok in line.split()[1:]}
    with gzip.open(source / "Beauty_item2attributes.json.gz", "rt") as fh:
        attributes = {k: v for k, v in json.load(fh).items() if k in items}
    target.mkdir(parents=True, exist_ok=True)
    (target / "Beauty.txt.gz").write_bytes(gzip.compress(b"".join(lines), compresslevel=9, mtime=0))
    text = json.dumps(attributes).encode()
    (target / "Beauty_item2attributes.json.gz").write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    return len(lines), len(items)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    kept_users, kept_items = cut(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE, TARGET)
    logger.info("wrote %s: %d users, %d items", TARGET, kept_users, kept_items)
