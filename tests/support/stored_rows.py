# What one object keeps in its SQLite file (a `wrangler dev --persist-to` or Miniflare
# state directory): the rows of its own tables and of the runtime's key-value table, and
# its pending alarm (the runtime's metadata row with a time). Local tooling's record of
# an object's name is not counted. Prints the count. Read-only.
#
#   python3 tests/support/stored_rows.py FILE
import sqlite3
import sys

c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
n = 0
for (t,) in c.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
    if t.startswith("sqlite_") or t.startswith("__miniflare"):
        continue
    rows = c.execute('SELECT * FROM "%s"' % t).fetchall()
    n += sum(1 for r in rows if r[-1] is not None) if t == "_cf_METADATA" else len(rows)
print(n)
