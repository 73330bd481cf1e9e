"""Retrieval data: documents from a folder or object storage, chunked, embedded by a fleet
service, kept in a vector index incrementally (``llmfleet ingest``).

    sources -> extract -> chunking -> embedding (a fleet service) -> index (LanceDB)
                                     ingest: the run that ties them, by content hash
"""
