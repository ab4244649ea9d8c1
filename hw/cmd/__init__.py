"""Command processor: descriptor ring, dispatch, dependency tokens, error handling."""
