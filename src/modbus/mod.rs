//! placeholder, replaced by the modbus ingest
