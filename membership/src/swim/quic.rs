//! The production transport: SWIM datagrams as QUIC datagrams between mutually authenticated
//! nodes ([`super::auth`]), one cached connection per peer (whichever side opened it), and
//! bidirectional streams for bulk data ([`QuicStreams`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::auth::{AuthError, ClusterCredential, SERVER_NAME};
use super::transport::Transport;

/// Datagram limit announced to foca: below quinn's 1162-byte limit at its initial 1200-byte
/// MTU, which holds on every path QUIC accepts.
pub const QUIC_DATAGRAM_LIMIT: usize = 1150;
/// Datagrams queued per peer while its connection is being set up.
const PENDING_PER_PEER: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("connection to {0} timed out")]
    Timeout(SocketAddr),
    #[error("transport closed")]
    Closed,
}

enum Peer {
    Connecting(Vec<Bytes>),
    Ready(Connection),
}

/// A bidirectional stream a peer opened to us.
pub struct IncomingStream {
    pub peer: SocketAddr,
    pub send: SendStream,
    pub recv: RecvStream,
}

struct Shared {
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    peers: Mutex<HashMap<SocketAddr, Peer>>,
    datagrams: mpsc::Sender<(SocketAddr, Bytes)>,
    streams: mpsc::Sender<IncomingStream>,
}

impl Shared {
    fn peers(&self) -> MutexGuard<'_, HashMap<SocketAddr, Peer>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Caches `conn` for its peer, sends what was queued, and reads from it until it closes.
    fn register(self: &Arc<Self>, conn: Connection) {
        let peer = conn.remote_address();
        let queued = match self.peers().insert(peer, Peer::Ready(conn.clone())) {
            Some(Peer::Connecting(q)) => q,
            _ => Vec::new(),
        };
        for d in queued {
            let _ = conn.send_datagram(d);
        }
        let shared = Arc::downgrade(self);
        let (datagrams, streams) = (self.datagrams.clone(), self.streams.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    d = conn.read_datagram() => match d {
                        // A full queue drops the datagram: SWIM tolerates loss.
                        Ok(d) => { let _ = datagrams.try_send((peer, d)); }
                        Err(_) => break,
                    },
                    s = conn.accept_bi() => match s {
                        Ok((send, recv)) => {
                            if streams.send(IncomingStream { peer, send, recv }).await.is_err() {
                                break;
                            }
                        }
                        Err(_) => break,
                    },
                }
            }
            if let Some(shared) = shared.upgrade() {
                let mut peers = shared.peers();
                if matches!(peers.get(&peer), Some(Peer::Ready(c)) if c.stable_id() == conn.stable_id())
                {
                    peers.remove(&peer);
                }
            }
        });
    }

    async fn connect(&self, peer: SocketAddr) -> Result<Connection, QuicError> {
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), peer, SERVER_NAME)?;
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(QuicError::Timeout(peer)),
        }
    }
}

/// The agent's end: datagrams in and out.
pub struct QuicTransport {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<(SocketAddr, Bytes)>,
    local: SocketAddr,
}

/// The shard's end: bulk-data streams to and from peers over the same connections.
#[derive(Clone)]
pub struct QuicStreams {
    shared: Arc<Shared>,
    incoming: Arc<tokio::sync::Mutex<mpsc::Receiver<IncomingStream>>>,
}

impl QuicTransport {
    /// Binds a QUIC endpoint at `addr` (port 0 picks one) for a cluster whose members share
    /// `secret`. Connections from nodes without the secret fail their handshake and are logged.
    pub fn bind(addr: SocketAddr, secret: &str) -> Result<(QuicTransport, QuicStreams), QuicError> {
        let cred = ClusterCredential::from_secret(secret)?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .keep_alive_interval(Some(Duration::from_secs(2)))
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(Duration::from_secs(10))
                    .map_err(|_| QuicError::Closed)?,
            ))
            .datagram_receive_buffer_size(Some(1 << 20));
        let transport = Arc::new(transport);
        let mut server = cred.server_config()?;
        server.transport_config(transport.clone());
        let mut client = cred.client_config()?;
        client.transport_config(transport);
        let endpoint = Endpoint::server(server, addr)?;
        let local = endpoint.local_addr()?;
        let (dtx, drx) = mpsc::channel(4096);
        let (stx, srx) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            endpoint: endpoint.clone(),
            client,
            peers: Mutex::new(HashMap::new()),
            datagrams: dtx,
            streams: stx,
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let weak = weak.clone();
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(conn) => match weak.upgrade() {
                            Some(shared) => shared.register(conn),
                            None => conn.close(0u32.into(), b"shutdown"),
                        },
                        Err(e) => warn!(%remote, "refused cluster connection: {e}"),
                    }
                });
            }
        });
        Ok((
            QuicTransport {
                shared: shared.clone(),
                rx: drx,
                local,
            },
            QuicStreams {
                shared,
                incoming: Arc::new(tokio::sync::Mutex::new(srx)),
            },
        ))
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.shared.endpoint.close(0u32.into(), b"shutdown");
    }
}

impl Transport for QuicTransport {
    fn send(&mut self, to: SocketAddr, data: Bytes) {
        let mut peers = self.shared.peers();
        match peers.get_mut(&to) {
            Some(Peer::Ready(conn)) => match conn.send_datagram(data.clone()) {
                Ok(()) => return,
                Err(quinn::SendDatagramError::ConnectionLost(_)) => {
                    peers.remove(&to);
                }
                Err(e) => {
                    debug!(%to, "datagram not sent: {e}");
                    return;
                }
            },
            Some(Peer::Connecting(q)) => {
                if q.len() < PENDING_PER_PEER {
                    q.push(data);
                }
                return;
            }
            None => {}
        }
        peers.insert(to, Peer::Connecting(vec![data]));
        drop(peers);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            match shared.connect(to).await {
                Ok(conn) => shared.register(conn),
                Err(e) => {
                    debug!(%to, "cluster connection failed: {e}");
                    let mut peers = shared.peers();
                    if matches!(peers.get(&to), Some(Peer::Connecting(_))) {
                        peers.remove(&to);
                    }
                }
            }
        });
    }

    fn recv(&mut self) -> impl Future<Output = Option<(SocketAddr, Bytes)>> + Send {
        self.rx.recv()
    }

    fn max_datagram_size(&self) -> usize {
        QUIC_DATAGRAM_LIMIT
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl QuicStreams {
    /// Opens a bidirectional stream to `peer` (its cluster address), reusing the cached
    /// connection or authenticating a new one.
    pub async fn open_stream(
        &self,
        peer: SocketAddr,
    ) -> Result<(SendStream, RecvStream), QuicError> {
        let cached = match self.shared.peers().get(&peer) {
            Some(Peer::Ready(c)) => Some(c.clone()),
            _ => None,
        };
        if let Some(conn) = cached
            && let Ok(s) = conn.open_bi().await
        {
            return Ok(s);
        }
        let conn = self.shared.connect(peer).await?;
        self.shared.register(conn.clone());
        Ok(conn.open_bi().await?)
    }

    /// The next stream a peer opened to us; `None` once the transport is closed.
    pub async fn accept_stream(&self) -> Option<IncomingStream> {
        self.incoming.lock().await.recv().await
    }

    pub fn local_addr(&self) -> Result<SocketAddr, QuicError> {
        Ok(self.shared.endpoint.local_addr()?)
    }
}
