//! The text of an offer we make on a session the peer already negotiated (to add m-lines we send
//! on). Format only: the engine decides every m-line; this renders them as an answer would.

use super::answer::{write_accepted, write_rejected, Token, Writer};
use super::{AnswerMedia, LocalTransport};
use std::fmt::Write;

/// Writes an offer (CRLF line endings) with `media` in order: m-lines already negotiated keep
/// what our last answer said (directions are ours, so a re-offer reads like that answer), new
/// ones come last. `local.setup` is the DTLS role already in use, so the answer cannot change it.
pub fn write_offer(local: &LocalTransport, media: &[AnswerMedia], session_id: u64) -> String {
    let mut out = Writer(String::with_capacity(512 + 2048 * media.len()));
    out.line(format_args!("v=0"));
    out.line(format_args!("o=- {session_id} 2 IN IP4 127.0.0.1"));
    out.line(format_args!("s=-"));
    out.line(format_args!("t=0 0"));
    let mut bundle = media.iter().filter(|m| m.is_written_accepted()).peekable();
    if bundle.peek().is_some() {
        let _ = out.0.write_str("a=group:BUNDLE");
        for line in bundle {
            let _ = write!(out.0, " {}", Token(&line.mid));
        }
        out.0.push_str("\r\n");
    }
    out.line(format_args!("a=ice-lite"));
    out.line(format_args!("a=msid-semantic: WMS *"));
    for line in media {
        if line.is_written_accepted() {
            write_accepted(&mut out, local, line);
        } else {
            write_rejected(&mut out, local, line);
        }
    }
    out.0
}
