//! How the server reaches its clients: a [`Transport`] moves request bytes to a client and its reply bytes back,
//! nothing else. [`InProcess`] holds the clients in the same process; a network transport would implement the same
//! trait and the server would not change.

use std::time::Duration;

use super::client::ClientRuntime;
use crate::error::{FedError, Result};

/// The server's view of its clients.
pub trait Transport {
    /// The ids of the clients reachable, in a fixed order (the order of a round).
    fn clients(&self) -> Vec<String>;

    /// Sends `request` to `client` and returns its reply. A transport that can stop waiting does so after
    /// `timeout` (`None`: wait as long as it takes); the server also measures the time and discards a late reply.
    ///
    /// # Errors
    /// The client is unknown or unreachable, or it answered with an error.
    fn exchange(&mut self, client: &str, request: &[u8], timeout: Option<Duration>) -> Result<Vec<u8>>;
}

/// Clients living in the server's process, called one after the other. It cannot interrupt a client, so it
/// ignores the timeout: the server discards a reply that came too late.
#[derive(Debug)]
pub struct InProcess {
    runtimes: Vec<ClientRuntime>,
}

impl InProcess {
    /// A transport over `runtimes`, in that order.
    ///
    /// # Errors
    /// [`FedError::Option`] when two runtimes share an id.
    pub fn new(runtimes: Vec<ClientRuntime>) -> Result<Self> {
        for (i, rt) in runtimes.iter().enumerate() {
            if runtimes[..i].iter().any(|other| other.id() == rt.id()) {
                return Err(FedError::option("client", format!("client id {} is used twice", rt.id())));
            }
        }
        Ok(Self { runtimes })
    }

    /// The client runtimes (e.g. to evaluate their trainers after the run).
    pub fn runtimes(&self) -> &[ClientRuntime] {
        &self.runtimes
    }

    /// The client runtimes, mutable (e.g. for an isolated run).
    pub fn runtimes_mut(&mut self) -> &mut [ClientRuntime] {
        &mut self.runtimes
    }
}

impl Transport for InProcess {
    fn clients(&self) -> Vec<String> {
        self.runtimes.iter().map(|rt| rt.id().to_owned()).collect()
    }

    fn exchange(&mut self, client: &str, request: &[u8], _timeout: Option<Duration>) -> Result<Vec<u8>> {
        let runtime = self
            .runtimes
            .iter_mut()
            .find(|rt| rt.id() == client)
            .ok_or_else(|| FedError::option("client", format!("no client {client} in this transport")))?;
        runtime.handle(request)
    }
}
