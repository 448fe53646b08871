"""What an operation handler receives for one request (shared by the HTTP face and the handlers)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from terminology.params import ParamBag
from terminology.registry import Registry
from terminology.settings import Settings


@dataclass
class OperationContext:
    """Everything an operation may read for one request."""

    registry: Registry
    bag: ParamBag
    settings: Settings
    instance: dict[str, Any] | None = None  # the resource for instance-level calls
    accept_language: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # the request's, by name


Handler = Callable[[OperationContext], dict[str, Any]]
