"""The export worker: sources, formats and the output contract (one ExportJob run)."""
