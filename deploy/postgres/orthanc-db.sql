-- The archive's index (Orthanc's PostgreSQL plugin) in a database of its own, beside the
-- catalog: the two never share tables. Run once, when the PostgreSQL volume is created.
CREATE DATABASE orthanc OWNER amana;
