"""Notifiers: hooks, webhooks and MQTT (built by notify.build)."""
