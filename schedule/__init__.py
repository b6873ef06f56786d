"""The nightly scheduler (`gridrecon schedule`): service.py runs api.run on a cron schedule,
logs.py sets up its event log, hooks.py tells people, commands.py is its command line."""
