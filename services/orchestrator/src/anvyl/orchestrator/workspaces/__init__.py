"""Workspaces: one isolated worker per repository, behind one backend interface."""
