"""The run: workload, nemesis, watcher, the run loop, the CLI runner and the pytest session."""
