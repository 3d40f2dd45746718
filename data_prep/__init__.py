import mlpscale  # noqa: F401,E402 - its Ctrl-C-during-start-up guard covers mlpscale-convert too
