"""Jobs from received to archived or quarantined: claiming, the pipeline, quarantine operations."""
