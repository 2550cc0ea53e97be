"""Notifications: the texts patients get (per purpose, channel and language), how an SMS fits one
segment, which channel a message goes to, and what delivery reports and inbound SMS mean. Pure
code: the channels themselves are behind `shared.kernel.notify.Notifier`."""
