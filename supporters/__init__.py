"""Supporters: who they are, what they agreed to, and how they join, confirm, choose and leave."""
