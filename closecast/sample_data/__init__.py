"""Daily Yahoo CSV exports shipped with closecast; see SOURCES.md."""
