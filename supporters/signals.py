"""Signals that supporters/ sends and higher layers subscribe to, so supporters/ never names them.

Receivers run synchronously in the sender's request, after the sender's commit, and must not
let an error of theirs undo or fail what the sender already did.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

# Sent by the join page once the join service has committed, whatever its outcome (the person's
# answer does not depend on it either). Keyword arguments: `email_normalized`, `ref` (the referral
# code the form carried, or None) and `campaign_hint` (the raw `c` form value naming the campaign
# whose share link brought the person, unvalidated, or None). The sender is the Flask app.
supporter_joined = _signals.signal("supporter-joined")
