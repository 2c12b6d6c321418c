"""The `motionrelay` command line: jobs through the HTTP API, API keys in the stack's table."""
