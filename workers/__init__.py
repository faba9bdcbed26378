"""hearth's deployable: settings, the Celery app and its tasks, the CLI, embedded services."""
