"""Image folders, in one import: scanning (:mod:`.collection`), reading (:mod:`.imageio`), thumbnails (:mod:`.thumbs`).

Kept so ``from vlexplore.images import scan_folder, open_image, thumbnail`` goes on working; new code may
import from the three modules directly.
"""

from __future__ import annotations

from .collection import ITEM_COLUMNS, SKIPPED_COLUMNS, Collection, scan_folder
from .imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    NOT_REGULAR,
    content_key,
    fingerprint_file,
    open_image,
    read_image_bytes,
)
from .thumbs import make_thumbnails, thumbnail, thumbnails_at

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ITEM_COLUMNS",
    "NOT_REGULAR",
    "SKIPPED_COLUMNS",
    "Collection",
    "content_key",
    "fingerprint_file",
    "make_thumbnails",
    "open_image",
    "read_image_bytes",
    "scan_folder",
    "thumbnail",
    "thumbnails_at",
]
