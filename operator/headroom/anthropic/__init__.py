"""The operator's own requests to Anthropic: only the plan usage endpoint, never the model."""
