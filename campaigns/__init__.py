"""Campaigns: announcements, share, review and vote asks, and the engine that sends them."""
