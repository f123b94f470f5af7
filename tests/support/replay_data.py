"""Tiny copies of the real data sets that ``shopstream produce beauty|ulb|ipinyou`` replays."""

from __future__ import annotations

import gzip
from pathlib import Path

from tools.loadgen.datasets import FILES

ULB_HEADER = ",Time," + ",".join(f"V{i}" for i in range(1, 29)) + ",Amount,Class"
IPY_HEADER = ("click,weekday,hour,useragent,IP,region,city,adexchange,domain,slotid,slotwidth,slotheight,"
              "slotvisibility,slotformat,creative,advertiser,slotprice")


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)


def _ulb_row(index: int, time_s: float, amount: float, label: int) -> str:
    return f"{index},{time_s}," + ",".join(["0.5"] * 28) + f",{amount},{label}"


def write_tiny_data_sets(root: Path) -> Path:
    """Beauty (2 users, 5 clicks), ULB (3 rows, one of 0 EUR) and iPinYou (3 + 1 impressions) files."""
    _write(root, FILES["beauty"][0], "1 1 2 3\n2 4 1\n")
    ulb = [ULB_HEADER, _ulb_row(0, 500.0, 25.99, 0), _ulb_row(1, 36.0, 1.0, 1), _ulb_row(2, 90.0, 0.0, 0)]
    _write(root, FILES["ulb"][0], "\n".join(ulb) + "\n")
    train = [IPY_HEADER, "0,2,18,android_safari,60.22.69.*,40,53,null,null,1,320,50,FirstView,Na,11908,2997,1-10",
             "1,2,17,windows_ie,other,216,217,null,6e9c0e0b,3445,320,50,OtherView,Na,11908,2997,11-50",
             "0,2,18,other_other,1.2.3.*,1,1,null,null,1,320,50,FirstView,Na,11908,2997,101+"]
    _write(root, FILES["ipinyou"][0], "\n".join(train) + "\n")
    test = "0,5,0,ios_safari,9.9.9.*,3,3,null,null,1,320,50,Na,Na,7,2997,0"
    _write(root, FILES["ipinyou"][1], f"{IPY_HEADER}\n{test}\n")
    return root


BANKING77_ROWS = (
    ("How do I locate my card?", "card_arrival"),
    ("My card payment was declined, why?", "declined_card_payment"),
    ('I was charged twice for "the same" thing, please refund one', "transaction_charged_twice"),
    ("Why is my card payment still pending?\nIt has been days.", "pending_card_payment"),
)
"""Four BANKING77-shaped messages (a comma, quotes and a newline inside a quoted field)."""


def write_tiny_banking77(root: Path) -> Path:
    """BANKING77's ``test.csv`` (``text,category``, not gzipped) with :data:`BANKING77_ROWS`."""
    import csv

    path = root / FILES["banking77"][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(BANKING77_ROWS)
    return root
