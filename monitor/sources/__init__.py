"""Sources: fetching over HTTP and turning responses into entries."""
