"""``catalog bench``: the pipeline's figures (producer, database writes, end to end) beside the model's.

Model-side measurements live in ``vlm.benchmark``; this package adds the ones that need the real
PostgreSQL, Redis and S3 servers, runs every section in one process (``suite``) and prints the table
(``report``).
"""
