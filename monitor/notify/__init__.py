"""Notification: the outbox, message rendering, and delivery through apprise."""
