//! Seeded random command generators for the differential tests (one module per type), shared
//! by the shard's tests and the proxy's, which run the same sequences through a proxy.

pub mod bitmap;
pub mod geo;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod set;
pub mod sort;
pub mod stream;
pub mod zset;
