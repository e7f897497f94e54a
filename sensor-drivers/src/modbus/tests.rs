//! Tests against real tokio-modbus peers.
