"""`rarewatch demo`: the real pipeline, offline, against sample feeds served on 127.0.0.1."""
