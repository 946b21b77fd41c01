"""Stripe webhooks (filled in with the Stripe provider)."""

WEBHOOK_HANDLERS: list = []
