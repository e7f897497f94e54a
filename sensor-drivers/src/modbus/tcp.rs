//! Modbus TCP master: tokio-modbus's client with a timeout around every
//! request and a fresh connection after any timeout or link error.
//!
//! Dropping the connection after a timeout is what keeps replies matched to
//! requests: a late answer arrives on a socket nobody reads any more. It also
//! makes the endpoint recover by itself after the device power-cycles.

use std::time::Duration;

use tokio_modbus::client::{tcp, Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};

use super::config::Function;
use super::error::RequestError;

/// One Modbus TCP endpoint, connected lazily.
pub struct TcpMaster {
    host: String,
    port: u16,
    timeout: Duration,
    ctx: Option<Context>,
}

impl std::fmt::Debug for TcpMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpMaster")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("connected", &self.ctx.is_some())
            .finish()
    }
}

impl TcpMaster {
    pub fn new(host: impl Into<String>, port: u16, timeout: Duration) -> Self {
        TcpMaster {
            host: host.into(),
            port,
            timeout,
            ctx: None,
        }
    }

    fn timeout_error(&self) -> RequestError {
        RequestError::Timeout {
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            over_tcp: true,
        }
    }

    async fn connect(&mut self) -> Result<Context, RequestError> {
        let addr = format!("{}:{}", self.host, self.port);
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(stream)) => {
                // Readings are tiny and latency matters more than throughput.
                let _ = stream.set_nodelay(true);
                Ok(tcp::attach_slave(stream, Slave(1)))
            }
            Ok(Err(e)) => Err(RequestError::Connect {
                addr,
                reason: e.to_string(),
            }),
            Err(_) => Err(RequestError::Connect {
                addr,
                reason: "connect timed out".into(),
            }),
        }
    }

    /// Reads `count` registers from `unit`, connecting first if needed.
    pub async fn read(
        &mut self,
        unit: u8,
        function: Function,
        address: u16,
        count: u16,
    ) -> Result<Vec<u16>, RequestError> {
        let mut ctx = match self.ctx.take() {
            Some(ctx) => ctx,
            None => self.connect().await?,
        };
        ctx.set_slave(Slave(unit));
        let request = async {
            match function {
                Function::Holding => ctx.read_holding_registers(address, count).await,
                Function::Input => ctx.read_input_registers(address, count).await,
            }
        };
        let result = tokio::time::timeout(self.timeout, request).await;
        match result {
            // Timed out: the connection is dropped, and with it any late reply.
            Err(_) => Err(self.timeout_error()),
            Ok(Err(tokio_modbus::Error::Transport(e))) => Err(RequestError::Io(e)),
            Ok(Err(tokio_modbus::Error::Protocol(e))) => Err(RequestError::Mismatch(e.to_string())),
            Ok(Ok(Err(code))) => {
                self.ctx = Some(ctx);
                Err(RequestError::Exception {
                    exception: code.into(),
                })
            }
            Ok(Ok(Ok(words))) if words.len() != usize::from(count) => Err(RequestError::Mismatch(
                format!("{} registers, expected {count}", words.len()),
            )),
            Ok(Ok(Ok(words))) => {
                self.ctx = Some(ctx);
                Ok(words)
            }
        }
    }
}
