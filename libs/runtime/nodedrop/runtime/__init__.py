"""The runtime: runs attempts of executions against the store.

One attempt runner (``AttemptRunner``) serves every host: the worker's
``Consumer`` feeds it deliveries read from the job streams, and direct mode's
``HeldRunner`` feeds it the one job the API process holds for itself.  Both
therefore commit, heartbeat, cancel and end attempts by the same rules.
"""
