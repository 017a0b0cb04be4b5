"""Local PostgreSQL, Redis and S3 servers run from PyPI wheels, for development, demos and tests.

``stack`` starts and stops them together; ``postgres``, ``redis_server`` and ``seaweedfs`` each know one
server; ``service`` and ``process`` hold what they share.
"""
