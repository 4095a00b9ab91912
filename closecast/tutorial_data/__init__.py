"""The tutorial's price history, shipped so that ``closecast tutorial`` runs on a fresh
clone; see SOURCES.md."""
