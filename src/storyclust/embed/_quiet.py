"""Keep third-party loading noise off the user's stderr (shared by the torch and ONNX paths)."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_model_loading() -> Iterator[None]:
    """Keep transformers' weight-loading progress bar and sentence-transformers' notice that the
    model has a default prompt (storyclust passes its prompt explicitly) off the user's stderr."""
    import transformers

    st_logger = logging.getLogger("sentence_transformers")
    level, bars = st_logger.level, transformers.utils.logging.is_progress_bar_enabled()
    st_logger.setLevel(logging.ERROR)
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        st_logger.setLevel(level)
        if bars:
            transformers.utils.logging.enable_progress_bar()
