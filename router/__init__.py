"""The router: scoring, budgets, policy, cascade, outcome log and learning."""
