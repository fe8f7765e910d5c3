//! A ring of recently received RTP packets of one incoming stream, keyed by sequence number, for
//! answering NACKs. Storage only: which packets to resend, and when, is the caller's decision.

/// Largest packet a slot holds; bigger ones are not cached.
pub const MAX_PACKET_LEN: usize = 1500;

/// Extended sequence numbers start here so that stepping back from the first one never goes
/// negative.
const EXT_BASE: i64 = 1 << 32;

/// A packet this far behind the newest is not late but from a restarted sequence (RFC 3550 A.1
/// `MAX_DROPOUT`); the cache starts over instead of refusing every packet until it catches up.
const RESTART_DISTANCE: i64 = 3000;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Extended sequence number of the packet held; `-1` if empty.
    ext: i64,
    len: u16,
}

/// Copies of the last N packets (N a power of two) in one preallocated buffer. After
/// [`PacketCache::new`] nothing allocates.
#[derive(Debug, Clone)]
pub struct PacketCache {
    bytes: Box<[u8]>,
    slots: Box<[Slot]>,
    /// Extended sequence number of the newest packet inserted.
    highest: Option<i64>,
}

impl PacketCache {
    /// A cache of `slots` packets, rounded up to a power of two within 1..=32768 (half the
    /// sequence space, so that an extended number is never ambiguous).
    pub fn new(slots: usize) -> Self {
        let slots = slots.clamp(1, 1 << 15).next_power_of_two();
        PacketCache {
            bytes: vec![0; slots * MAX_PACKET_LEN].into_boxed_slice(),
            slots: vec![Slot { ext: -1, len: 0 }; slots].into_boxed_slice(),
            highest: None,
        }
    }

    /// Number of packets held at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn extend(&self, highest: i64, seq: u16) -> i64 {
        highest + i64::from(seq.wrapping_sub(highest as u16) as i16)
    }

    fn window(&self) -> i64 {
        self.slots.len() as i64
    }

    /// Stores a copy of `packet` under `seq`, replacing whatever held its slot. Returns false
    /// (and stores nothing) if the packet is longer than [`MAX_PACKET_LEN`] or older than the
    /// packets the cache holds.
    pub fn insert(&mut self, seq: u16, packet: &[u8]) -> bool {
        if packet.len() > MAX_PACKET_LEN {
            return false;
        }
        let mut ext = match self.highest {
            None => EXT_BASE + i64::from(seq),
            Some(highest) => self.extend(highest, seq),
        };
        let mut highest = self.highest.map_or(ext, |h| h.max(ext));
        if highest - ext > self.window().max(RESTART_DISTANCE) {
            self.clear();
            ext = EXT_BASE + i64::from(seq);
            highest = ext;
        } else if ext <= highest - self.window() {
            return false;
        }
        self.highest = Some(highest);
        let index = (ext as usize) & (self.slots.len() - 1);
        let start = index * MAX_PACKET_LEN;
        self.bytes[start..start + packet.len()].copy_from_slice(packet);
        self.slots[index] = Slot {
            ext,
            len: packet.len() as u16,
        };
        true
    }

    /// The packet stored under `seq`, if its slot still holds that packet.
    pub fn get(&self, seq: u16) -> Option<&[u8]> {
        let highest = self.highest?;
        let ext = self.extend(highest, seq);
        if ext > highest || ext <= highest - self.window() {
            return None;
        }
        let index = (ext as usize) & (self.slots.len() - 1);
        let slot = self.slots[index];
        if slot.ext != ext {
            return None;
        }
        let start = index * MAX_PACKET_LEN;
        self.bytes.get(start..start + usize::from(slot.len))
    }

    /// Forgets every packet (e.g. when the stream restarts); keeps the memory.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| s.ext = -1);
        self.highest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.resize(20 + usize::from(seq % 7), seq as u8);
        p
    }

    #[test]
    fn capacity_is_a_power_of_two() {
        assert_eq!(PacketCache::new(1000).capacity(), 1024);
        assert_eq!(PacketCache::new(1024).capacity(), 1024);
        assert_eq!(PacketCache::new(0).capacity(), 1);
        assert_eq!(PacketCache::new(usize::MAX).capacity(), 32768);
    }

    #[test]
    fn hit_returns_the_stored_bytes_and_miss_returns_none() {
        let mut cache = PacketCache::new(16);
        assert_eq!(cache.get(1), None);
        assert!(cache.insert(1, &packet(1)));
        assert!(cache.insert(3, &packet(3)));
        assert_eq!(cache.get(1), Some(&packet(1)[..]));
        assert_eq!(cache.get(3), Some(&packet(3)[..]));
        assert_eq!(cache.get(2), None, "never inserted");
        assert_eq!(cache.get(4), None, "newer than anything inserted");
        assert!(
            cache.insert(2, &packet(2)),
            "late packets within the window are kept"
        );
        assert_eq!(cache.get(2), Some(&packet(2)[..]));
    }

    #[test]
    fn overwritten_slots_are_stale() {
        let mut cache = PacketCache::new(16);
        for seq in 0..=16 {
            cache.insert(seq, &packet(seq));
        }
        assert_eq!(cache.get(0), None, "slot now holds 16");
        assert_eq!(cache.get(16), Some(&packet(16)[..]));
        assert_eq!(cache.get(1), Some(&packet(1)[..]));
        assert!(
            !cache.insert(0, &packet(0)),
            "older than the window would evict a newer packet"
        );
        assert_eq!(cache.get(16), Some(&packet(16)[..]));
    }

    #[test]
    fn slots_skipped_by_a_jump_are_stale() {
        let mut cache = PacketCache::new(16);
        cache.insert(5, &packet(5));
        cache.insert(5 + 16 * 3 + 1, &packet(54));
        assert_eq!(cache.get(5), None);
        // 65536 packets later the same number is a different packet.
        let mut cache = PacketCache::new(16);
        for seq in [7u16, 16390, 32770, 49150, 65535, 2, 9] {
            assert!(cache.insert(seq, &packet(seq)));
        }
        assert_eq!(
            cache.get(7),
            None,
            "slot still holds the 7 of the previous cycle"
        );
        assert_eq!(cache.get(9), Some(&packet(9)[..]));
    }

    #[test]
    fn a_sequence_restarting_far_behind_starts_the_cache_over() {
        let mut cache = PacketCache::new(16);
        cache.insert(20_000, &packet(1));
        assert!(
            !cache.insert(20_000 - 17, &packet(2)),
            "late, older than the window"
        );
        assert!(cache.insert(100, &packet(3)));
        assert_eq!(cache.get(100), Some(&packet(3)[..]));
        assert_eq!(cache.get(20_000), None);
        assert!(cache.insert(101, &packet(4)));
    }

    #[test]
    fn works_across_the_sequence_wrap() {
        let mut cache = PacketCache::new(8);
        for seq in [65533u16, 65534, 65535, 0, 1] {
            cache.insert(seq, &packet(seq));
        }
        for seq in [65533u16, 65534, 65535, 0, 1] {
            assert_eq!(cache.get(seq), Some(&packet(seq)[..]));
        }
    }

    #[test]
    fn oversized_packets_are_not_stored() {
        let mut cache = PacketCache::new(4);
        assert!(!cache.insert(1, &[0; MAX_PACKET_LEN + 1]));
        assert_eq!(cache.get(1), None);
        assert!(cache.insert(1, &[7; MAX_PACKET_LEN]));
        assert_eq!(cache.get(1).map(<[u8]>::len), Some(MAX_PACKET_LEN));
    }

    #[test]
    fn clear_forgets_everything() {
        let mut cache = PacketCache::new(4);
        cache.insert(1, &packet(1));
        cache.clear();
        assert_eq!(cache.get(1), None);
        assert!(cache.insert(40_000, &packet(2)));
        assert_eq!(cache.get(40_000), Some(&packet(2)[..]));
    }
}
