"""The worker's routes, one module per concern: info (health, info), exec, files, git.

Each module's `routes(state, guard)` returns its Starlette routes; `guard` (from `anvyl.worker.app`)
puts the bearer-token check and the error mapping in front of a handler.
"""
