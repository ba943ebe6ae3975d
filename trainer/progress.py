"""Progress bars (tqdm) that can be switched off for logs and tests."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator

from tqdm import tqdm


def progress(items: Iterable, desc: str, total: int | None = None, initial: int = 0,
             enabled: bool = True) -> "tqdm":
    """A tqdm bar over ``items``; disabled bars still support set_postfix/close."""
    return tqdm(items, desc=desc, total=total, initial=initial, disable=not enabled, dynamic_ncols=True,
                leave=False, file=sys.stderr, mininterval=0.5, unit="batch")
