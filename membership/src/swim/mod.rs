//! SWIM cluster membership: nodes find each other with foca over a [`Transport`] (QUIC in
//! production, a simulated network in tests), and agree on who owns each of the 16384 slots
//! through epoch-stamped claims. See `docs/membership.md`.

pub mod agent;
pub mod auth;
pub mod broadcast;
pub mod config;
pub mod identity;
pub mod quic;
pub mod rebalance;
pub mod scheduler;
pub mod transport;

pub use agent::{
    AgentError, AgentHandle, ClusterView, Member, MemberEvent, MemberState, RestartState, spawn,
};
pub use broadcast::{Claim, SlotOwnership, SlotRange, SlotTable};
pub use config::{ClusterConfig, ConfigError, RebalanceMode};
pub use identity::{NodeId, NodeIdentity, NodeInfo};
pub use quic::{IncomingStream, QuicError, QuicStreams, QuicTransport};
pub use rebalance::Move;
pub use transport::{SimConfig, SimNetwork, SimStats, SimTransport, Transport};
