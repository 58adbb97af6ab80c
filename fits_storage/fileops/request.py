"""One header-update request as the fileops queue carries it (the entry's ``request`` JSON)."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from fits_storage.config import Config
from fits_storage.queues import get_queue


@dataclass(frozen=True)
class HeaderUpdate:
    """``values``: what the client asked for; ``changes``: the primary-header keywords they
    set (fileops.values); ``requested``: when, ISO 8601 UTC; ``requester``: who."""

    changes: dict[str, Any]
    reject_new: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    requested: str = ""
    requester: str = ""
    item_id: str = ""  # the filename or data label the client named

    def dumps(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> HeaderUpdate:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def queue_update(
    session: Session, config: Config, filename: str, path: str, update: HeaderUpdate
) -> str:
    """Add ``update`` of ``path/filename`` to the fileops queue; returns its request id (the
    key of its ``updatelog`` row)."""
    request_id = uuid.uuid4().hex
    get_queue("fileops", config).add(
        session,
        filename,
        path,
        request_id=request_id,
        request=update.dumps(),
        requester=update.requester[:255],
    )
    return request_id
