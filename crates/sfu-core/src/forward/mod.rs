//! Forwarding primitives the engine composes per track and per subscriber: sequence and timestamp
//! rewriting, the retransmission cache, upstream NACK tracking and RTX framing. Mechanism only:
//! which packets to forward, to whom and when is the engine's decision.

mod nack;
mod packet_cache;
mod rewrite;
mod rtx;

pub use nack::{NackConfig, NackPoll, NackTracker};
pub use packet_cache::{PacketCache, MAX_PACKET_LEN};
pub use rewrite::{rtp_ticks, SequenceRewriter, REORDER_WINDOW};
pub use rtx::{unwrap_rtx, write_rtx};
