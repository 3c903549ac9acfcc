"""Jobs used by the queue tests (workers import them by dotted path, so they live in a module)."""

import os

from core.accounts import record_audit
from core.extensions import db
from core.queues import job


@job("default")
def write_audit(label: str) -> int:
    """Prove the job ran in an app context with a working session: write a row."""
    record_audit("test.job", actor_type="system", actor_label=label, detail={"pid": os.getpid()})
    db.session.commit()
    return os.getpid()
