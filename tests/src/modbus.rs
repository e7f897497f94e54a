//! A real Modbus TCP server (tokio-modbus) in the test process whose
//! registers the test changes while a real `coldgate run` polls them: the
//! readings follow a script, to the register.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};

/// Input registers by unit id. A unit not in the map never answers (a unit
/// unplugged or at another address).
#[derive(Clone, Default)]
pub struct Units(Arc<Mutex<HashMap<u8, Vec<u16>>>>);

impl Units {
    pub fn new(units: impl IntoIterator<Item = (u8, Vec<u16>)>) -> Units {
        Units(Arc::new(Mutex::new(units.into_iter().collect())))
    }

    /// Sets input register `address` of `unit` (the unit answers from now).
    pub fn set(&self, unit: u8, address: usize, word: u16) {
        let mut units = self.0.lock().unwrap();
        let words = units.entry(unit).or_default();
        if words.len() <= address {
            words.resize(address + 1, 0);
        }
        words[address] = word;
    }

    /// The unit stops answering, as if unplugged.
    pub fn unplug(&self, unit: u8) {
        self.0.lock().unwrap().remove(&unit);
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Option<Response>, ExceptionCode>> + Send>>;

struct Service(Units);

impl tokio_modbus::server::Service for Service {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Answer;

    fn call(&self, req: Self::Request) -> Self::Future {
        let units = self.0 .0.lock().unwrap();
        let Some(words) = units.get(&req.slave) else {
            return Box::pin(std::future::ready(Ok(None)));
        };
        let result = match req.request {
            Request::ReadInputRegisters(a, n) => words
                .get(usize::from(a)..usize::from(a) + usize::from(n))
                .map(|w| Some(Response::ReadInputRegisters(w.to_vec())))
                .ok_or(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        };
        Box::pin(std::future::ready(result))
    }
}

/// Starts the server on its own runtime thread; it lives until the test
/// process ends. The test keeps `units` to change what it answers.
pub fn start_server(units: Units) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the Modbus server");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port for the Modbus server");
            let _ = tx.send(listener.local_addr().expect("its address"));
            let server = tokio_modbus::server::tcp::Server::new(listener);
            let on_connected = |stream, _peer| {
                let service = Arc::new(Service(units.clone()));
                async move { Ok(Some((service, stream))) }
            };
            let _ = server.serve(&on_connected, |_err| {}).await;
        });
    });
    rx.recv().expect("the Modbus server started")
}

/// °C as the test devices' register holds it: a signed hundredth.
pub fn centi(celsius: f64) -> u16 {
    ((celsius * 100.0).round() as i16) as u16
}
