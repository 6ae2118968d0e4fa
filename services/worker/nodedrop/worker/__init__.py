"""Worker service: consumes jobs and runs the engine; WorkerService for status and drain."""
