-- crmonban schema, version 2.
--
-- Resume points of log sources: where a restart starts reading again so that the lines of
-- failure windows still open (and of bans decided but not yet recorded) are read again after a
-- crash. Saved by the detection pipeline beside log_positions (the read-through position);
-- same columns and encodings. A source without a row resumes at its log_positions row.
CREATE TABLE log_resume (
    source          TEXT    PRIMARY KEY,
    inode           INTEGER,
    "offset"        INTEGER,
    first_line_hash INTEGER,
    cursor          TEXT,
    updated_at      INTEGER NOT NULL
) STRICT;
