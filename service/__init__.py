"""i-Score HTTP API (Flask)."""
