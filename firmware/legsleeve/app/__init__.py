"""The application: the runner (the tick), the session builder, self-test, service, control socket, alarms,
logs, summary, plots, bench and the command line."""
