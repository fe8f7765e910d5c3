//! ICE restart (RFC 8445 §9): an offer with new ice-ufrag/ice-pwd on a connected peer gets new
//! server credentials; the path moves to the address a check with them nominates, the old
//! credentials and address are refused afterwards, and DTLS/SRTP carry on without a new handshake.

use sfu_core::{Event, MediaKind, PeerId};
use sfu_testkit::*;
use std::net::SocketAddr;
use std::time::Duration;

struct Room {
    net: SimNetwork,
    alice: (usize, PeerId),
    bob: (usize, PeerId),
    sequence: u16,
}

/// Alice publishes, Bob receives her video, and a first keyframe went through.
fn room(seed: u64) -> Room {
    let mut net = SimNetwork::new(seed);
    let alice = net.join("alice", 5000, SimPeer::publisher_offer);
    let video = net.published(MediaKind::Video).expect("video published");
    let bob = net.join("bob", 5001, |p| p.subscriber_offer(1, 1));
    net.engine
        .subscribe(bob.1, video, net.now)
        .expect("subscribed");
    let mut room = Room {
        net,
        alice,
        bob,
        sequence: 100,
    };
    send_video(&mut room, true);
    room
}

fn send_video(room: &mut Room, keyframe: bool) {
    let sequence = room.sequence;
    room.sequence += 1;
    let payload = vp8_payload(keyframe, sequence as u8, 900);
    room.net.peers[room.alice.0].send_rtp(
        VP8_PT,
        VIDEO_SSRC,
        sequence,
        sequence as u32 * 3000,
        true,
        &payload,
    );
    room.net.run();
    room.net.advance(Duration::from_millis(30));
}

fn received_by_bob(room: &Room) -> usize {
    room.net.peers[room.bob.0].received_rtp.len()
}

fn plis_received(room: &Room) -> usize {
    room.net.peers[room.alice.0].plis_received(VIDEO_SSRC)
}

fn server_credentials(peer: &SimPeer) -> (String, String) {
    let (ufrag, pwd) = peer
        .answer
        .as_ref()
        .and_then(|answer| answer.ice_credentials())
        .expect("the answer has ICE credentials");
    (ufrag.to_owned(), pwd.to_owned())
}

fn connections_of(net: &SimNetwork, peer: PeerId) -> usize {
    net.events
        .iter()
        .filter(|event| matches!(event, Event::PeerConnected { peer: p, .. } if *p == peer))
        .count()
}

/// Restarts ICE for `index` the way a browser whose network changed does: new credentials in a
/// renegotiation, then a nominating check from `new_address`.
fn restart_from(
    room: &mut Room,
    index: usize,
    peer: PeerId,
    new_address: SocketAddr,
    offer: impl Fn(&SimPeer) -> String,
) {
    let sim = &mut room.net.peers[index];
    sim.ice_ufrag = format!("{}Re", sim.name);
    sim.ice_pwd = format!("{}RestartedPassword012345", sim.name);
    let answer = room
        .net
        .engine
        .apply_offer(peer, &offer(&room.net.peers[index]), room.net.now)
        .expect("the restart offer is accepted");
    room.net.peers[index].apply_answer(&answer);
    room.net.peers[index].address = new_address;
    room.net.peers[index].send_connectivity_check(true);
    room.net.run();
}

#[test]
fn a_publisher_restarting_from_a_new_address_keeps_publishing_without_a_new_handshake() {
    let mut room = room(11);
    let (alice, alice_peer) = room.alice;
    let old_address = room.net.peers[alice].address;
    let (old_ufrag, old_pwd) = server_credentials(&room.net.peers[alice]);
    let before = received_by_bob(&room);
    assert!(before > 0, "media flows before the restart");

    let new_address = SocketAddr::from(([127, 0, 0, 1], 6000));
    let plis = plis_received(&room);
    restart_from(
        &mut room,
        alice,
        alice_peer,
        new_address,
        SimPeer::publisher_offer,
    );
    let (new_ufrag, new_pwd) = server_credentials(&room.net.peers[alice]);
    assert_ne!(new_ufrag, old_ufrag, "the answer carries a new ice-ufrag");
    assert_ne!(new_pwd, old_pwd, "the answer carries a new ice-pwd");

    for _ in 0..5 {
        send_video(&mut room, false);
    }
    assert_eq!(
        received_by_bob(&room),
        before + 5,
        "media from the new address is forwarded"
    );
    assert_eq!(
        connections_of(&room.net, alice_peer),
        1,
        "no second DTLS handshake"
    );
    assert!(room.net.peers[alice].connected);
    // Paced like every keyframe request (at most one per 350 ms).
    room.net.advance(Duration::from_millis(400));
    assert!(
        plis_received(&room) > plis,
        "the moved publisher is asked for a keyframe: what it sent meanwhile was dropped"
    );

    // A check with the old credentials, from the old address: refused, and nothing is answered.
    let rejected = room.net.engine.stats().stun_rejected;
    let undelivered = room.net.undelivered;
    room.net.peers[alice].address = old_address;
    let stale = binding_request(
        &[9; 12],
        &format!("{old_ufrag}:aliceUf"),
        old_pwd.as_bytes(),
        true,
    );
    room.net.peers[alice].send_raw(stale);
    room.net.run();
    assert_eq!(room.net.engine.stats().stun_rejected, rejected + 1);
    assert_eq!(
        room.net.undelivered, undelivered,
        "no response to the old credentials"
    );

    // Media from the retired address is not accepted any more.
    let unknown = room.net.engine.stats().dropped_unknown_source;
    let received = received_by_bob(&room);
    send_video(&mut room, false);
    assert_eq!(received_by_bob(&room), received);
    assert_eq!(room.net.engine.stats().dropped_unknown_source, unknown + 1);

    room.net.peers[alice].address = new_address;
    send_video(&mut room, false);
    assert_eq!(received_by_bob(&room), received + 1);
}

#[test]
fn a_subscriber_restarting_from_a_new_address_receives_there_and_keeps_receiving_meanwhile() {
    let mut room = room(12);
    let (bob, bob_peer) = room.bob;
    let old_ufrag = server_credentials(&room.net.peers[bob]).0;
    let before = received_by_bob(&room);

    // Between the restart offer and the first check with the new credentials the old path stays.
    room.net.peers[bob].ice_ufrag = "bobRe".into();
    room.net.peers[bob].ice_pwd = "bobRestartedPassword012345".into();
    let offer = room.net.peers[bob].subscriber_offer(1, 1);
    let answer = room
        .net
        .engine
        .apply_offer(bob_peer, &offer, room.net.now)
        .expect("the restart offer is accepted");
    room.net.peers[bob].apply_answer(&answer);
    send_video(&mut room, false);
    assert_eq!(
        received_by_bob(&room),
        before + 1,
        "media keeps the old path until a new one is nominated"
    );
    assert_ne!(server_credentials(&room.net.peers[bob]).0, old_ufrag);

    let undelivered = room.net.undelivered;
    room.net.peers[bob].address = SocketAddr::from(([127, 0, 0, 1], 6001));
    room.net.peers[bob].send_connectivity_check(true);
    room.net.run();
    for _ in 0..5 {
        send_video(&mut room, false);
    }
    assert_eq!(
        received_by_bob(&room),
        before + 6,
        "media goes to the nominated address"
    );
    assert_eq!(
        room.net.undelivered, undelivered,
        "nothing is sent to the old address any more"
    );
    assert_eq!(
        connections_of(&room.net, bob_peer),
        1,
        "no second DTLS handshake"
    );
    let sequences: Vec<u16> = room.net.peers[bob]
        .received_rtp
        .iter()
        .map(|p| p.sequence)
        .collect();
    assert!(
        sequences
            .windows(2)
            .all(|pair| pair[1] == pair[0].wrapping_add(1)),
        "one unbroken sequence across the restart: {sequences:?}"
    );
}

#[test]
fn a_renegotiation_with_the_same_credentials_is_not_a_restart() {
    let mut room = room(13);
    let (alice, alice_peer) = room.alice;
    let credentials = server_credentials(&room.net.peers[alice]);
    let offer = room.net.peers[alice].publisher_offer();
    let answer = room
        .net
        .engine
        .apply_offer(alice_peer, &offer, room.net.now)
        .expect("accepted");
    room.net.peers[alice].apply_answer(&answer);
    assert_eq!(server_credentials(&room.net.peers[alice]), credentials);
    let before = received_by_bob(&room);
    send_video(&mut room, false);
    assert_eq!(received_by_bob(&room), before + 1);
}
