"""An encoder that says who it is at once and loads its weights on first use.

Opening a folder whose embeddings are all in the disk cache needs the encoder's identity only (``model_id``, the
cache namespace, and ``views``), not the model: importing torch and open_clip and building a CLIP costs seconds
on a small machine. :class:`LazyEncoder` holds that identity, worked out from names and file contents
(:mod:`.identity`), and builds the real encoder the first time anything else is asked of it (``preprocess``,
``encode_image_batch``, ``encode_texts``, ``logit_params``…), once, whichever thread asks first.

If the built encoder's id is not the one announced (its files changed in between), it is refused with a
:class:`~vlexplore.errors.ConfigError`: rows cached under the old id must not be mixed with the new model's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError

#: A failed load is answered with the same error for this long before it is tried again, so the decoding
#: threads of one run (and a warm-up) do not each retry a model that is not there.
RETRY_AFTER_S = 30.0


class LazyEncoder:
    """An :class:`~vlexplore.models.base.Encoder` whose weights load on first use.

    Args:
        build: makes the real encoder (slow; called at most once, unless it fails).
        model_id, views, description, device: what the built encoder will say (``device`` is replaced by
            the built encoder's own).
        kind: the class of the built encoder: attributes it does not define are missing here too, without
            loading it (``hasattr(enc, "label_captions")`` stays cheap and true to the model).
        name: the model name as given, for messages.
        instance_attributes: attributes the built encoder sets in ``__init__`` that may be asked for.
    """

    def __init__(
        self,
        build: Callable[[], Any],
        *,
        model_id: str,
        views: Sequence[str],
        description: str,
        device: str,
        kind: type,
        name: str = "",
        instance_attributes: Sequence[str] = (),
    ) -> None:
        self.model_id = model_id
        self.views = tuple(views)
        self.description = description
        self.device = device
        self.cache_dir = None
        self.name = name or model_id
        self._build = build
        self._kind = kind
        self._instance_attributes = frozenset(instance_attributes)
        self._lock = threading.Lock()
        self._encoder: Any = None
        self._failure: tuple[float, BaseException] | None = None

    def __repr__(self) -> str:
        return f"LazyEncoder({self.model_id!r}, loaded={self.loaded})"

    @property
    def loaded(self) -> bool:
        """Whether the weights are loaded."""
        return self._encoder is not None

    def load(self):
        """The real encoder, built now if it is not yet (thread-safe; once).

        Raises:
            ConfigError: what building raises, or the built model's id is not the one this encoder announced.
            ModelUnavailableError: a valid hub model that cannot be fetched.
        """
        encoder = self._encoder
        if encoder is not None:
            return encoder
        with self._lock:
            if self._encoder is not None:
                return self._encoder
            if self._failure is not None and time.monotonic() - self._failure[0] < RETRY_AFTER_S:
                raise self._failure[1]
            try:
                encoder = self._build()
                self._check(encoder)
            except Exception as exc:
                self._failure = (time.monotonic(), exc)
                raise
            self._failure = None
            self.device = encoder.device
            self.description = encoder.description
            self._encoder = encoder
        return encoder

    def _check(self, encoder) -> None:
        if encoder.model_id != self.model_id or tuple(encoder.views) != self.views:
            raise ConfigError(
                f"model {self.name!r} changed since it was opened: it was {self.model_id}, it is now "
                f"{encoder.model_id}; open the folder again (its cached embeddings belong to the old one)"
            )

    def warm_up(self) -> None:
        """Load the weights now, so that a first search does not wait; a failure is raised at first use."""
        with contextlib.suppress(Exception):  # remembered, and raised where the model is used
            self.load()

    # -- the Encoder protocol: each loads the weights ------------------------------------------------
    def preprocess(self, image):
        """The real encoder's ``preprocess`` (loads the weights)."""
        return self.load().preprocess(image)

    def encode_image_batch(self, batch):
        """The real encoder's ``encode_image_batch`` (loads the weights)."""
        return self.load().encode_image_batch(batch)

    def encode_texts(self, texts, **kwargs):
        """The real encoder's ``encode_texts`` (loads the weights)."""
        return self.load().encode_texts(texts, **kwargs)

    def __getattr__(self, name: str):
        # only reached for what this object does not hold itself
        if name.startswith("_"):
            raise AttributeError(name)
        kind = self.__dict__.get("_kind")
        if kind is None or not (hasattr(kind, name) or name in self.__dict__.get("_instance_attributes", ())):
            raise AttributeError(f"{getattr(kind, '__name__', 'the encoder')} has no attribute {name!r}")
        return getattr(self.load(), name)


def lazy_openclip(spec, *, device: str = "auto", cache_dir=None, name: str = "") -> LazyEncoder | None:
    """A :class:`LazyEncoder` for the open_clip ``spec`` (a :class:`~.registry.ModelSpec`).

    ``None`` when its identity cannot be known without loading it (see
    :func:`~.identity.openclip_identity`).
    """
    from .base import quick_device
    from .identity import openclip_identity
    from .openclip import OpenClipEncoder

    guess = bool(spec.options.get("guess_arch"))
    known = openclip_identity(spec.name, spec.pretrained, guess_arch=guess, digest_dir=cache_dir)
    if known is None:
        return None
    model_id, description = known
    dev = quick_device(device)

    def build():
        return OpenClipEncoder(
            spec.name, spec.pretrained, device=device, digest_dir=cache_dir, **spec.options
        )

    return LazyEncoder(
        build,
        model_id=model_id,
        views=OpenClipEncoder.views,
        description=description,
        device=dev,
        kind=OpenClipEncoder,
        name=name or spec.name,
        instance_attributes=("arch", "pretrained", "checkpoint", "schema", "digest_dir"),
    )
