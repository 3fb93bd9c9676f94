"""The reference-format chat and math directories, gzip-compressed (see PROVENANCE.md)."""
