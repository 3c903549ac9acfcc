"""Campaign models (see the sending-engine issue)."""
