"""Running models: the enhancer interface and engine, the model registry, chains, regions and strength, process isolation."""
