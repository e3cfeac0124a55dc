//! placeholder, replaced by the mqtt ingest
