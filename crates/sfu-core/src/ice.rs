//! ICE-lite state of one peer (RFC 8445 §2.5): which addresses passed a connectivity check, which
//! one the controlling browser nominated, and consent freshness (RFC 7675). The STUN wire format is
//! in `stun`; the engine glues the two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A browser sends several candidate pairs' checks; more validated addresses than this per peer are
/// not kept (the oldest is forgotten), so a peer cannot make the engine grow without bound.
const MAX_VALIDATED_ADDRESSES: usize = 8;

pub struct IceLite {
    pub local_ufrag: String,
    pub local_pwd: String,
    pub remote_ufrag: Option<String>,
    pub remote_pwd: Option<String>,
    validated: Vec<SocketAddr>,
    selected: Option<SocketAddr>,
    last_consent: Option<Instant>,
    /// An ICE restart happened and no check with the new credentials nominated a path yet.
    restart_pending: bool,
    /// Addresses validated before a restart, forgotten once a new path is nominated.
    retired: Vec<SocketAddr>,
}

/// What a successful binding request changed.
#[derive(Debug, PartialEq, Eq)]
pub enum BindingOutcome {
    /// The address was already known and nothing changed but consent freshness.
    Refreshed,
    /// A new address passed a check; media from it is now accepted.
    Validated,
    /// The controlling side nominated this address (USE-CANDIDATE): we send to it from now on.
    Nominated,
}

impl IceLite {
    pub fn new(local_ufrag: String, local_pwd: String) -> Self {
        IceLite {
            local_ufrag,
            local_pwd,
            remote_ufrag: None,
            remote_pwd: None,
            validated: Vec::new(),
            selected: None,
            last_consent: None,
            restart_pending: false,
            retired: Vec::new(),
        }
    }

    /// Records a check from `source` that passed MESSAGE-INTEGRITY.
    pub fn on_binding_request(
        &mut self,
        source: SocketAddr,
        use_candidate: bool,
        now: Instant,
    ) -> BindingOutcome {
        self.last_consent = Some(now);
        let newly_validated = if self.validated.contains(&source) {
            false
        } else {
            if self.validated.len() == MAX_VALIDATED_ADDRESSES {
                self.validated.remove(0);
            }
            self.validated.push(source);
            true
        };
        if self.restart_pending && use_candidate {
            // The restarted agent chose its path: the ones from before the restart are done.
            self.restart_pending = false;
            self.retired
                .extend(self.validated.iter().filter(|&&address| address != source));
            self.validated.retain(|&address| address == source);
        }
        // A browser that never nominates still gets media on the first working path.
        if (use_candidate || self.selected.is_none()) && self.selected != Some(source) {
            self.selected = Some(source);
            return BindingOutcome::Nominated;
        }
        if newly_validated {
            BindingOutcome::Validated
        } else {
            BindingOutcome::Refreshed
        }
    }

    pub fn is_validated(&self, address: &SocketAddr) -> bool {
        self.validated.contains(address)
    }

    pub fn validated_addresses(&self) -> &[SocketAddr] {
        &self.validated
    }

    /// Where to send: the nominated address.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    /// Fixes the path without checks, for a relay link between engines whose address the control
    /// plane already trusts.
    pub fn pin(&mut self, address: SocketAddr) {
        self.validated = vec![address];
        self.selected = Some(address);
    }

    /// RFC 7675: without a successful check for `timeout`, consent is gone.
    pub fn consent_expires_at(&self, timeout: Duration) -> Option<Instant> {
        self.last_consent.map(|at| at + timeout)
    }

    /// ICE restart (RFC 8445 §9): new local credentials, so checks with the old ones fail from
    /// now on. Media keeps the current path, and consent its clock, until the controlling side
    /// nominates a path with the new credentials; the older paths are then retired.
    pub fn restart(&mut self, local_ufrag: String, local_pwd: String) {
        self.local_ufrag = local_ufrag;
        self.local_pwd = local_pwd;
        self.remote_ufrag = None;
        self.remote_pwd = None;
        self.restart_pending = true;
    }

    /// Addresses a restart retired since the last call; the engine stops accepting media from them.
    pub fn take_retired(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.retired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_first_checked_address_is_selected_until_another_is_nominated() {
        let now = crate::test_epoch();
        let mut ice = IceLite::new("u".into(), "p".into());
        assert_eq!(
            ice.on_binding_request(addr(1), false, now),
            BindingOutcome::Nominated
        );
        assert_eq!(
            ice.on_binding_request(addr(2), false, now),
            BindingOutcome::Validated
        );
        assert_eq!(ice.selected(), Some(addr(1)));
        assert_eq!(
            ice.on_binding_request(addr(2), true, now),
            BindingOutcome::Nominated
        );
        assert_eq!(ice.selected(), Some(addr(2)));
        assert_eq!(
            ice.on_binding_request(addr(2), true, now),
            BindingOutcome::Refreshed
        );
    }

    #[test]
    fn unchecked_addresses_are_not_validated_and_the_list_is_bounded() {
        let now = crate::test_epoch();
        let mut ice = IceLite::new("u".into(), "p".into());
        assert!(!ice.is_validated(&addr(9)));
        for port in 0..20 {
            ice.on_binding_request(addr(port), false, now);
        }
        assert_eq!(ice.validated_addresses().len(), MAX_VALIDATED_ADDRESSES);
        assert!(ice.is_validated(&addr(19)) && !ice.is_validated(&addr(0)));
    }

    #[test]
    fn a_restart_keeps_the_path_until_a_new_one_is_nominated_then_retires_the_old() {
        let now = crate::test_epoch();
        let mut ice = IceLite::new("u".into(), "p".into());
        ice.on_binding_request(addr(1), true, now);
        ice.on_binding_request(addr(2), false, now);
        ice.restart("u2".into(), "p2".into());
        assert_eq!(ice.local_ufrag, "u2");
        assert_eq!(ice.selected(), Some(addr(1)));
        assert!(ice.take_retired().is_empty());
        assert_eq!(
            ice.on_binding_request(addr(3), false, now),
            BindingOutcome::Validated
        );
        assert_eq!(ice.selected(), Some(addr(1)), "not nominated yet");
        assert_eq!(
            ice.on_binding_request(addr(3), true, now),
            BindingOutcome::Nominated
        );
        assert_eq!(ice.selected(), Some(addr(3)));
        let mut retired = ice.take_retired();
        retired.sort();
        assert_eq!(retired, vec![addr(1), addr(2)]);
        assert_eq!(ice.validated_addresses(), &[addr(3)]);
        assert!(ice.take_retired().is_empty());
    }

    #[test]
    fn consent_expires_thirty_seconds_after_the_last_check() {
        let now = crate::test_epoch();
        let mut ice = IceLite::new("u".into(), "p".into());
        assert_eq!(ice.consent_expires_at(Duration::from_secs(30)), None);
        ice.on_binding_request(addr(1), true, now);
        assert_eq!(
            ice.consent_expires_at(Duration::from_secs(30)),
            Some(now + Duration::from_secs(30))
        );
    }
}
