"""qssm-bench harness: tasks, training cells, sweeps, results store, executors and the CLI."""
