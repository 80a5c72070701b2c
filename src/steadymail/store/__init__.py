"""The only door to SQL: tables, migrations, repositories and the lease queue."""
