"""The document: recordings and their versions, the session holding them, its file, and version operations."""
