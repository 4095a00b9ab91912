"""closecast."""
