"""Base class of every configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors (typos fail loudly) and validated settings are immutable."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)
