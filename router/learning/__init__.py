"""Learning the difficulty model and the escalation thresholds from logged outcomes."""
