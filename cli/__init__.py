"""The kerasapps command line."""
