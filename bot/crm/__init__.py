"""The CRM: the tables (models.py) and their Alembic migrations (migrations/), the database and the one way to
open a session (db.py), the audit trail (audit.py), the advocacy ladder (ladder.py), the language a customer
writes in (languages.py) and customers' data rights (data_rights.py)."""
