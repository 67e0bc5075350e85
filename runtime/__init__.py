"""The ground every process stands on: settings, logging, metric names, the clock, HTTP plumbing, OpenAPI."""
