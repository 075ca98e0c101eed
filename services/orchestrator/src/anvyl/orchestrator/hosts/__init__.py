"""Known hosts: other Anvyl orchestrators (or A2A agents) this one asks, one at a time or all at once."""
