//! DTLS 1.2 for one peer over rtc-dtls, plus the fingerprint check and the DTLS-SRTP key export.
//! Not the demultiplexing (engine) nor SRTP itself (`srtp`).

use crate::error::SfuError;
use bytes::BytesMut;
use rtc_dtls::config::{
    ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig,
    VerifyPeerCertificateFn,
};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::{default_provider, RTCCryptoProvider};
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// RFC 5764 §4.2 exporter label.
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// rtc-dtls keys associations by address; the engine routes by ICE instead (the peer's address may
/// change), so every association of a `DtlsTransport` lives under this one placeholder key.
const ASSOCIATION_KEY: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(0, 0, 0, 1)), 9);

/// The engine's certificate, shared by all peers of one engine.
pub struct DtlsIdentity {
    certificate: Certificate,
    provider: Arc<dyn RTCCryptoProvider>,
    fingerprint: String,
}

impl DtlsIdentity {
    /// Generates a fresh ECDSA P-256 self-signed certificate (what browsers expect).
    pub fn generate() -> Result<Self, SfuError> {
        let provider = default_provider().map_err(|e| SfuError::Crypto(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["conclave".to_owned()], provider.crypto())
                .map_err(|e| SfuError::Crypto(e.to_string()))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| SfuError::Crypto("certificate has no DER".into()))?;
        let fingerprint = fingerprint_hex(&Sha256::digest(der.as_ref()));
        Ok(DtlsIdentity {
            certificate,
            provider,
            fingerprint,
        })
    }

    /// Upper-case colon-separated SHA-256 of our certificate, as `a=fingerprint:sha-256` wants it.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fingerprint
    }
}

/// Which side of the handshake we play, from the SDP `a=setup` exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    Client,
    Server,
}

/// What a finished handshake hands to SRTP.
pub struct SrtpKeys {
    pub profile_id: u16,
    pub material: Vec<u8>,
    pub we_are_client: bool,
}

pub enum DtlsOutcome {
    Nothing,
    Connected(SrtpKeys),
    Closed,
    Failed(&'static str),
}

pub struct DtlsTransport {
    endpoint: Endpoint,
    role: DtlsRole,
    config: Arc<HandshakeConfig>,
    certificate: Certificate,
    provider: Arc<dyn RTCCryptoProvider>,
    remote_fingerprint_sha256: Vec<u8>,
    started: bool,
    connected: bool,
    /// A fragmented first ClientHello being reassembled before the server config is chosen.
    held_hello: Option<HelloAssembly>,
}

/// DTLS-SRTP protection profile ids (RFC 5764 §4.1.2, RFC 7714 §14.2).
const SRTP_AEAD_AES_128_GCM: u16 = 0x0007;
const SRTP_AES128_CM_HMAC_SHA1_80: u16 = 0x0001;

impl DtlsTransport {
    /// `remote_fingerprint_sha256` is the peer's `a=fingerprint:sha-256` value as bytes; a
    /// certificate hashing to anything else fails the handshake.
    pub fn new(
        identity: &DtlsIdentity,
        role: DtlsRole,
        remote_fingerprint_sha256: Vec<u8>,
    ) -> Result<Self, SfuError> {
        let profiles = [
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ];
        let config = build_config(
            &identity.certificate,
            &identity.provider,
            role,
            remote_fingerprint_sha256.clone(),
            &profiles,
        )?;
        let endpoint = new_endpoint(role, &config);
        Ok(DtlsTransport {
            endpoint,
            role,
            config,
            certificate: identity.certificate.clone(),
            provider: identity.provider.clone(),
            remote_fingerprint_sha256,
            started: false,
            connected: false,
            held_hello: None,
        })
    }

    /// rtc-dtls, as server, takes the first profile in the *client's* list, and Chromium lists
    /// AES-CM before AES-GCM. GCM costs a quarter of CM+HMAC per packet
    /// (docs/decisions/0001-srtp-crypto.md), so when the first ClientHello offers GCM the server
    /// side is rebuilt to accept only GCM.
    fn prefer_gcm(&mut self, offered: &[u16]) {
        if !offered.contains(&SRTP_AEAD_AES_128_GCM) {
            return;
        }
        let only_gcm = [SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm];
        if let Ok(config) = build_config(
            &self.certificate,
            &self.provider,
            self.role,
            self.remote_fingerprint_sha256.clone(),
            &only_gcm,
        ) {
            self.endpoint = new_endpoint(self.role, &config);
            self.config = config;
        }
    }

    pub fn role(&self) -> DtlsRole {
        self.role
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// As client, sends the ClientHello once ICE has a path; as server, waits for it.
    pub fn start(&mut self, now: Instant) -> DtlsOutcome {
        if self.started || self.role == DtlsRole::Server {
            return DtlsOutcome::Nothing;
        }
        self.started = true;
        match self
            .endpoint
            .connect(now, ASSOCIATION_KEY, self.config.clone(), None)
        {
            Ok(()) => DtlsOutcome::Nothing,
            Err(_) => DtlsOutcome::Failed("dtls_failed"),
        }
    }

    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> DtlsOutcome {
        if self.started || self.role == DtlsRole::Client {
            return self.read_datagram(now, data);
        }
        // The first flight decides the server's SRTP profiles. Chromium's ClientHello, with its
        // post-quantum key share, spans two datagrams, so it is reassembled first.
        let Some(fragment) = client_hello_fragment(data) else {
            return self.release_held(now, Some(data));
        };
        let assembly = self
            .held_hello
            .get_or_insert_with(|| HelloAssembly::new(fragment.length));
        if !assembly.add(&fragment, data) {
            return self.release_held(now, Some(data));
        }
        if !assembly.is_complete() {
            return DtlsOutcome::Nothing;
        }
        if let Some(profiles) = assembly.srtp_profiles() {
            self.prefer_gcm(&profiles);
        }
        self.release_held(now, None)
    }

    /// Feeds the held first-flight datagrams (and `then`) to the handshake, in order.
    fn release_held(&mut self, now: Instant, then: Option<&[u8]>) -> DtlsOutcome {
        self.started = true;
        let held = self
            .held_hello
            .take()
            .map(|a| a.datagrams)
            .unwrap_or_default();
        let mut outcome = DtlsOutcome::Nothing;
        for datagram in held.iter().map(Vec::as_slice).chain(then) {
            match self.read_datagram(now, datagram) {
                DtlsOutcome::Nothing => {}
                other => outcome = other,
            }
        }
        outcome
    }

    fn read_datagram(&mut self, now: Instant, data: &[u8]) -> DtlsOutcome {
        let events = match self
            .endpoint
            .read(now, ASSOCIATION_KEY, None, BytesMut::from(data))
        {
            Ok(events) => events,
            Err(e) => {
                let text = e.to_string();
                log::debug!("dtls read failed: {text}");
                if text.contains("fingerprint") || text.contains("certificate") {
                    return DtlsOutcome::Failed("fingerprint_mismatch");
                }
                // A bad record after the handshake is dropped; during it, the handshake is over.
                return if self.connected {
                    DtlsOutcome::Nothing
                } else {
                    DtlsOutcome::Failed("dtls_failed")
                };
            }
        };
        let mut outcome = DtlsOutcome::Nothing;
        for event in events {
            match event {
                EndpointEvent::HandshakeComplete => {
                    self.connected = true;
                    outcome = match self.export_keys() {
                        Some(keys) => DtlsOutcome::Connected(keys),
                        None => DtlsOutcome::Failed("dtls_failed"),
                    };
                }
                EndpointEvent::PeerClosed => return DtlsOutcome::Closed,
                _ => {}
            }
        }
        outcome
    }

    fn export_keys(&self) -> Option<SrtpKeys> {
        let state = self.endpoint.get_connection_state(ASSOCIATION_KEY)?;
        let profile_id = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SRTP_AEAD_AES_128_GCM,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SRTP_AES128_CM_HMAC_SHA1_80,
            _ => return None,
        };
        // AEAD_AES_128_GCM: 16-byte keys, 12-byte salts; AES_CM_128: 16 and 14 (RFC 5764, RFC 7714).
        let salt_len = if profile_id == SRTP_AEAD_AES_128_GCM {
            12
        } else {
            14
        };
        let material = state
            .export_keying_material(SRTP_EXPORTER_LABEL, &[], 2 * (16 + salt_len))
            .ok()?;
        Some(SrtpKeys {
            profile_id,
            material: material.as_ref().to_vec(),
            we_are_client: state.is_client(),
        })
    }

    pub fn handle_timeout(&mut self, now: Instant) -> DtlsOutcome {
        if let Some(at) = self.endpoint.poll_timeout(&ASSOCIATION_KEY) {
            if now >= at && self.endpoint.handle_timeout(ASSOCIATION_KEY, now).is_err() {
                return DtlsOutcome::Failed("dtls_failed");
            }
        }
        DtlsOutcome::Nothing
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout(&ASSOCIATION_KEY)
    }

    /// Next datagram the handshake wants sent.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        self.endpoint.poll_transmit().map(|t| t.message)
    }

    pub fn close(&mut self, now: Instant) {
        self.endpoint.stop(now, ASSOCIATION_KEY);
    }
}

fn build_config(
    certificate: &Certificate,
    provider: &Arc<dyn RTCCryptoProvider>,
    role: DtlsRole,
    remote_fingerprint_sha256: Vec<u8>,
    profiles: &[SrtpProtectionProfile],
) -> Result<Arc<HandshakeConfig>, SfuError> {
    let verify: VerifyPeerCertificateFn = Arc::new(move |certs: &[Vec<u8>], _| {
        let Some(leaf) = certs.first() else {
            return Err(rtc_shared::error::Error::ErrNonCertificate);
        };
        if Sha256::digest(leaf).as_slice() == remote_fingerprint_sha256.as_slice() {
            Ok(())
        } else {
            Err(rtc_shared::error::Error::ErrNoMatchingCertificateFingerprint)
        }
    });
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider.clone())
        .with_certificates(vec![certificate.clone()])
        .with_srtp_protection_profiles(profiles.to_vec())
        .with_client_auth(ClientAuthType::RequireAnyClientCert)
        // The CA chain is meaningless for WebRTC's self-signed certificates; `verify` above
        // checks the SDP fingerprint instead, and RequireAnyClientCert makes it mandatory.
        .with_insecure_skip_verify(true)
        .with_verify_peer_certificate(Some(verify))
        .with_extended_master_secret(ExtendedMasterSecretType::Require)
        .with_replay_protection_window(1024)
        .with_mtu(1200)
        .build(role == DtlsRole::Client, None)
        .map_err(|e| SfuError::Crypto(e.to_string()))?;
    Ok(Arc::new(config))
}

fn new_endpoint(role: DtlsRole, config: &Arc<HandshakeConfig>) -> Endpoint {
    let server_config = (role == DtlsRole::Server).then(|| config.clone());
    Endpoint::new(
        SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        rtc_shared::TransportProtocol::UDP,
        server_config,
    )
}

/// One fragment of a first-flight ClientHello (handshake type 1, message_seq 0).
struct HelloFragment<'a> {
    length: usize,
    offset: usize,
    bytes: &'a [u8],
}

/// The ClientHello fragment a datagram starts with, if it does.
fn client_hello_fragment(datagram: &[u8]) -> Option<HelloFragment<'_>> {
    let mut r = Reader(datagram);
    // Record header: content type 22 (handshake), version, epoch, sequence, length.
    (r.u8()? == 22).then_some(())?;
    r.skip(2 + 2 + 6)?;
    let record_len = r.u16()? as usize;
    let mut r = Reader(r.take(record_len)?);
    // Handshake header: type 1 (ClientHello), length, message_seq, fragment offset and length.
    (r.u8()? == 1).then_some(())?;
    let length = r.u24()? as usize;
    (r.u16()? == 0).then_some(())?;
    let (offset, fragment_len) = (r.u24()? as usize, r.u24()? as usize);
    let bytes = r.take(fragment_len)?;
    (offset + fragment_len <= length).then_some(HelloFragment {
        length,
        offset,
        bytes,
    })
}

/// Reassembles a fragmented ClientHello, keeping the datagrams to feed DTLS afterwards.
struct HelloAssembly {
    body: Vec<u8>,
    received: Vec<bool>,
    datagrams: Vec<Vec<u8>>,
}

/// A ClientHello larger than this, or in more datagrams, is not reassembled (it is passed on).
const MAX_HELLO_LEN: usize = 16 * 1024;
const MAX_HELLO_DATAGRAMS: usize = 8;

impl HelloAssembly {
    fn new(length: usize) -> Self {
        let length = length.min(MAX_HELLO_LEN);
        HelloAssembly {
            body: vec![0; length],
            received: vec![false; length],
            datagrams: Vec::new(),
        }
    }

    /// Adds a fragment; false if it does not belong to this message or there are too many.
    fn add(&mut self, fragment: &HelloFragment<'_>, datagram: &[u8]) -> bool {
        if fragment.length != self.body.len() || self.datagrams.len() == MAX_HELLO_DATAGRAMS {
            return false;
        }
        let range = fragment.offset..fragment.offset + fragment.bytes.len();
        self.body[range.clone()].copy_from_slice(fragment.bytes);
        self.received[range].iter_mut().for_each(|r| *r = true);
        self.datagrams.push(datagram.to_vec());
        true
    }

    fn is_complete(&self) -> bool {
        self.received.iter().all(|r| *r)
    }

    fn srtp_profiles(&self) -> Option<Vec<u16>> {
        srtp_profiles_of_client_hello(&self.body)
    }
}

/// The SRTP profiles offered by the `use_srtp` extension (RFC 5764 §4.1.1) of a whole
/// ClientHello body; `None` if it has none or is malformed.
fn srtp_profiles_of_client_hello(body: &[u8]) -> Option<Vec<u16>> {
    let mut r = Reader(body);
    r.skip(2 + 32)?; // client_version, random
    let session_id = r.u8()? as usize;
    r.skip(session_id)?;
    let cookie = r.u8()? as usize;
    r.skip(cookie)?;
    let suites = r.u16()? as usize;
    r.skip(suites)?;
    let compression = r.u8()? as usize;
    r.skip(compression)?;
    let extensions_len = r.u16()? as usize;
    let mut extensions = Reader(r.take(extensions_len)?);
    while let (Some(kind), Some(len)) = (extensions.u16(), extensions.u16()) {
        let body = extensions.take(len as usize)?;
        if kind == 0x000e {
            let mut body = Reader(body);
            let list_len = body.u16()? as usize;
            let mut list = Reader(body.take(list_len)?);
            let mut profiles = Vec::new();
            while let Some(profile) = list.u16() {
                profiles.push(profile);
            }
            return Some(profiles);
        }
    }
    None
}

#[cfg(test)]
fn offered_srtp_profiles(datagram: &[u8]) -> Option<Vec<u16>> {
    let fragment = client_hello_fragment(datagram)?;
    (fragment.offset == 0 && fragment.bytes.len() == fragment.length).then_some(())?;
    srtp_profiles_of_client_hello(fragment.bytes)
}

/// A bounds-checked cursor: every read returns `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<u32> {
        self.take(3)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
}

/// `AB:CD:...` as SDP writes fingerprints.
pub fn fingerprint_hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn decode_fingerprint(hex: &str) -> Vec<u8> {
        hex.split(':')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Shuttles datagrams between two transports until both settle; returns each side's outcome.
    fn handshake(
        client: &mut DtlsTransport,
        server: &mut DtlsTransport,
    ) -> (Option<SrtpKeys>, Option<SrtpKeys>, Vec<&'static str>) {
        let mut now = crate::test_epoch();
        let (mut client_keys, mut server_keys, mut failures) = (None, None, Vec::new());
        let record = |outcome: DtlsOutcome,
                      slot: &mut Option<SrtpKeys>,
                      failures: &mut Vec<&'static str>| match outcome {
            DtlsOutcome::Connected(keys) => *slot = Some(keys),
            DtlsOutcome::Failed(why) => failures.push(why),
            _ => {}
        };
        record(client.start(now), &mut client_keys, &mut failures);
        for _ in 0..50 {
            while let Some(datagram) = client.poll_transmit() {
                record(
                    server.handle_datagram(now, &datagram),
                    &mut server_keys,
                    &mut failures,
                );
            }
            while let Some(datagram) = server.poll_transmit() {
                record(
                    client.handle_datagram(now, &datagram),
                    &mut client_keys,
                    &mut failures,
                );
            }
            now += Duration::from_millis(10);
        }
        (client_keys, server_keys, failures)
    }

    #[test]
    fn handshake_with_matching_fingerprints_exports_the_same_srtp_keys() {
        let client_identity = DtlsIdentity::generate().unwrap();
        let server_identity = DtlsIdentity::generate().unwrap();
        let mut client = DtlsTransport::new(
            &client_identity,
            DtlsRole::Client,
            decode_fingerprint(server_identity.fingerprint_sha256()),
        )
        .unwrap();
        let mut server = DtlsTransport::new(
            &server_identity,
            DtlsRole::Server,
            decode_fingerprint(client_identity.fingerprint_sha256()),
        )
        .unwrap();
        let (client_keys, server_keys, failures) = handshake(&mut client, &mut server);
        assert!(failures.is_empty(), "{failures:?}");
        let (client_keys, server_keys) = (client_keys.unwrap(), server_keys.unwrap());
        assert_eq!(
            client_keys.profile_id, 0x0007,
            "AEAD_AES_128_GCM is preferred"
        );
        assert_eq!(client_keys.material, server_keys.material);
        assert!(client_keys.we_are_client && !server_keys.we_are_client);
    }

    /// A client that lists AES-CM before AES-GCM, as Chromium does, and our server.
    fn client_listing_aes_cm_first_and_server() -> (DtlsTransport, DtlsTransport) {
        let client_identity = DtlsIdentity::generate().unwrap();
        let server_identity = DtlsIdentity::generate().unwrap();
        let profiles = [
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        ];
        let server_fingerprint = decode_fingerprint(server_identity.fingerprint_sha256());
        let config = build_config(
            &client_identity.certificate,
            &client_identity.provider,
            DtlsRole::Client,
            server_fingerprint.clone(),
            &profiles,
        )
        .unwrap();
        let client = DtlsTransport {
            endpoint: new_endpoint(DtlsRole::Client, &config),
            role: DtlsRole::Client,
            config,
            certificate: client_identity.certificate.clone(),
            provider: client_identity.provider.clone(),
            remote_fingerprint_sha256: server_fingerprint,
            started: false,
            connected: false,
            held_hello: None,
        };
        let server = DtlsTransport::new(
            &server_identity,
            DtlsRole::Server,
            decode_fingerprint(client_identity.fingerprint_sha256()),
        )
        .unwrap();
        (client, server)
    }

    #[test]
    fn the_server_settles_on_aes_gcm_even_when_the_client_lists_aes_cm_first() {
        let (mut client, mut server) = client_listing_aes_cm_first_and_server();
        let (client_keys, server_keys, failures) = handshake(&mut client, &mut server);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(server_keys.unwrap().profile_id, SRTP_AEAD_AES_128_GCM);
        assert_eq!(client_keys.unwrap().profile_id, SRTP_AEAD_AES_128_GCM);
    }

    /// Splits a datagram holding one whole ClientHello into two datagrams, each a record with
    /// one fragment of it, as Chromium's big post-quantum ClientHello arrives.
    fn split_client_hello(datagram: &[u8]) -> [Vec<u8>; 2] {
        let record_header = &datagram[..13];
        let handshake = &datagram[13..];
        let length = u32::from_be_bytes([0, handshake[1], handshake[2], handshake[3]]) as usize;
        let body = &handshake[12..12 + length];
        let half = length / 2;
        let piece = |offset: usize, bytes: &[u8], sequence: u8| {
            let mut out = record_header.to_vec();
            out[10] = sequence;
            out[11..13].copy_from_slice(&((12 + bytes.len()) as u16).to_be_bytes());
            out.extend_from_slice(&handshake[..6]); // type, length, message_seq
            out.extend_from_slice(&(offset as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(bytes);
            out
        };
        [piece(0, &body[..half], 0), piece(half, &body[half..], 1)]
    }

    #[test]
    fn a_fragmented_client_hello_is_reassembled_and_aes_gcm_still_chosen() {
        let (mut client, mut server) = client_listing_aes_cm_first_and_server();
        let now = crate::test_epoch();
        client.start(now);
        let hello = client.poll_transmit().unwrap();
        let [first, second] = split_client_hello(&hello);
        assert!(client_hello_fragment(&first)
            .is_some_and(|f| f.offset == 0 && f.bytes.len() < f.length));
        assert!(matches!(
            server.handle_datagram(now, &first),
            DtlsOutcome::Nothing
        ));
        assert!(
            server.poll_transmit().is_none(),
            "nothing answered before the whole hello"
        );
        server.handle_datagram(now, &second);
        // The split used one more epoch-0 record number than the client knows of; shift its
        // later epoch-0 records by one so that replay protection does not take them for old.
        let bump_epoch0 = |datagram: &[u8]| {
            let mut out = datagram.to_vec();
            let mut at = 0;
            while at + 13 <= out.len() {
                if out[at + 3..at + 5] == [0, 0] {
                    let mut seq = [0u8; 8];
                    seq[2..].copy_from_slice(&out[at + 5..at + 11]);
                    let next = u64::from_be_bytes(seq) + 1;
                    out[at + 5..at + 11].copy_from_slice(&next.to_be_bytes()[2..]);
                }
                at += 13 + u16::from_be_bytes([out[at + 11], out[at + 12]]) as usize;
            }
            out
        };
        let (mut client_keys, mut server_keys) = (None, None);
        for _ in 0..20 {
            while let Some(datagram) = server.poll_transmit() {
                if let DtlsOutcome::Connected(keys) = client.handle_datagram(now, &datagram) {
                    client_keys = Some(keys);
                }
            }
            while let Some(datagram) = client.poll_transmit() {
                if let DtlsOutcome::Connected(keys) =
                    server.handle_datagram(now, &bump_epoch0(&datagram))
                {
                    server_keys = Some(keys);
                }
            }
        }
        assert_eq!(
            server_keys.expect("server connected").profile_id,
            SRTP_AEAD_AES_128_GCM
        );
        assert_eq!(
            client_keys.expect("client connected").profile_id,
            SRTP_AEAD_AES_128_GCM
        );
    }

    #[test]
    fn client_hello_parsing_never_panics_on_truncations() {
        for len in 0..64 {
            let mut datagram = vec![22u8, 0xfe, 0xfd];
            datagram.resize(len, 0xff);
            assert!(offered_srtp_profiles(&datagram).is_none());
        }
    }

    #[test]
    fn handshake_with_a_certificate_that_does_not_match_the_sdp_fingerprint_fails() {
        let client_identity = DtlsIdentity::generate().unwrap();
        let server_identity = DtlsIdentity::generate().unwrap();
        let impostor = DtlsIdentity::generate().unwrap();
        let mut client = DtlsTransport::new(
            &client_identity,
            DtlsRole::Client,
            decode_fingerprint(server_identity.fingerprint_sha256()),
        )
        .unwrap();
        let mut server = DtlsTransport::new(
            &server_identity,
            DtlsRole::Server,
            decode_fingerprint(impostor.fingerprint_sha256()),
        )
        .unwrap();
        let (_, server_keys, failures) = handshake(&mut client, &mut server);
        assert!(server_keys.is_none());
        assert!(!failures.is_empty());
    }
}
