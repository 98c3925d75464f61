"""The CRM: the tables (models.py) and their Alembic migrations (migrations/), the database (db.py), the
advocacy ladder (ladder.py) and customers' data rights (data_rights.py)."""
